// Command provision derives from the policy file the Kafka topics and ACLs
// that consentgate needs, and prints them (provision plan) or applies them
// to a cluster (provision apply). See README.md at the repository root,
// "Provisioning topics and ACLs".
//
// The topics: the enforcer's input topics and their dead letters, the
// consent topics (no retention limit, no compaction: the system of record)
// and their dead letters, the revocation notices, the audit (retention
// PROVISION_AUDIT_RETENTION_MS, kept by default), the ledger's audit
// checkpoints and one topic per stream of the policy; every one with the
// same replication factor and min.insync.replicas.
//
// The ACLs allow each principal what its client calls need and nothing
// else: the enforcer reads its input and group and writes the streams, the
// audit and its dead letters; consent-sync reads the consent topics and its
// group and writes the notices, its dead letters and (with the intake) the
// consent topic; the ledger reads what it keeps and writes the checkpoints;
// each stream's consumer principal reads its own topic and groups with its
// prefix, nothing else.
//
// Apply is idempotent: it creates the missing topics and ACLs, and reports
// (and fails on) existing topics whose partitions, replication or
// configuration differ from the plan, which it does not change; ACL rules
// beyond the plan (of its principals, of User:*, or of anyone on its
// topics and groups), which it deletes only with --prune; and deny rules
// that take a planned allow away.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `provision: the Kafka topics and ACLs of consentgate, derived from the policy.

  provision plan  [settings]   print the plan (--json for JSON)
  provision apply [settings]   create what is missing; report what differs and
                               every ACL rule beyond the plan (--prune deletes those)

Every setting is a flag or an environment variable (provision plan --help).
`

// run is main with its inputs and outputs; it returns the exit code: 0 when
// done (apply: the cluster matches the plan: no topic differs, no rule
// beyond the plan is left, no deny rule takes a planned one away), 1 on an
// error, 2 for bad usage.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	getenv := func(k string) string { v, _ := lookup(k); return v }
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd := args[0]
	switch cmd {
	case "plan", "apply":
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage+"\n")
		c := DefaultConfig()
		c.flags("plan|apply").PrintUsage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "provision: unknown command (want plan or apply)\n\n%s", usage)
		return 2
	}
	cfg := DefaultConfig()
	set := cfg.flags(cmd)
	// envflag takes an empty variable for an unset one (the default), but
	// KEYS_TOPIC set to empty means "no keys topic" (as for the ledger's
	// LEDGER_KEYS_TOPIC); --keys-topic still wins.
	if v, ok := lookup("KEYS_TOPIC"); ok && v == "" {
		cfg.KeysTopic = ""
	}
	perr := set.Parse(args[1:], getenv)
	if errors.Is(perr, flag.ErrHelp) {
		set.PrintUsage(stdout)
		return 0
	}
	var secret error
	if cmd == "plan" && (getenv("KAFKA_SASL_PASSWORD") != "" || slices.ContainsFunc(args[1:], func(a string) bool {
		return strings.HasPrefix(strings.TrimLeft(a, "-"), "kafka-sasl-password") && !strings.HasPrefix(strings.TrimLeft(a, "-"), "kafka-sasl-password-file")
	})) {
		// As the services stop (apply does in cfg.Kafka.Validate): a
		// password in a variable is a secret in the environment.
		secret = errors.New("KAFKA_SASL_PASSWORD is set, but the password is read only from a file: write it to a file readable by this service only, set KAFKA_SASL_PASSWORD_FILE to that file, and unset KAFKA_SASL_PASSWORD")
	}
	if err := errors.Join(perr, secret, cfg.Validate(cmd == "apply")); err != nil {
		fmt.Fprintf(stderr, "provision %s: bad configuration (see --help):\n%v\n", cmd, err)
		return 1
	}
	pol, err := policy.Load(cfg.Policy)
	if err != nil {
		fmt.Fprintf(stderr, "provision %s: load policy:\n%v\n", cmd, err)
		return 1
	}
	plan, err := Derive(pol, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "provision %s: %v\n", cmd, err)
		return 1
	}
	if cmd == "plan" {
		if cfg.JSON {
			err = plan.PrintJSON(stdout)
		} else {
			err = plan.PrintText(stdout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "provision plan: %v\n", err)
			return 1
		}
		return 0
	}

	cfg.Kafka.Security.LogWarnings(slog.New(slog.NewTextHandler(stderr, nil)))
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := stream.CheckSecurity(ctx, cfg.Kafka); err != nil {
		fmt.Fprintf(stderr, "provision apply: %v\n", err)
		return 1
	}
	report, err := Apply(ctx, cfg.Kafka.Client(), plan, cfg.Prune)
	if err != nil {
		fmt.Fprintf(stderr, "provision apply: %v\n", cfg.Kafka.Explain(ctx, err))
		return 1
	}
	if cfg.JSON {
		if err := printJSON(stdout, report); err != nil {
			fmt.Fprintf(stderr, "provision apply: %v\n", err)
			return 1
		}
	} else {
		report.PrintText(stdout)
	}
	if err := report.Err(); err != nil {
		fmt.Fprintf(stderr, "provision apply: %v\n", err)
		return 1
	}
	return 0
}
