// Command consentctl answers the compliance team's questions from the
// ledger (services/ledger) and the audit topic:
//
//	consentctl subject <id>          a subject's whole history (--json, --export FILE)
//	consentctl breach …              who received what on which streams in a window
//	consentctl completeness          every input offset has exactly one audit record
//	consentctl policies              which policy versions decided events when
//	consentctl processing-record     the record of processing activities, from the policy
//	consentctl keygen                a key pair for the audit sealer
//	consentctl verify                recompute the audit's Merkle trees from the topic and check every checkpoint
//	consentctl prove <event id>      an inclusion proof of an event's audit record
//	consentctl verify-proof FILE     check an inclusion proof offline
//	consentctl audit-export          the audit records and checkpoints to a file (verify --from-file)
//	consentctl decrypt               a topic's records with their encrypted fields decrypted ("erased" once an erasure destroyed the key)
//	consentctl stats                 rows per table, consumed positions and held partitions of the ledger
//	consentctl release               have a held partition read again, once an operator has decided
//
// Every command takes --help. Exit status: 0 when all is well, 2 when a
// check found a problem (incomplete audit, verification failure, a held
// partition), 1 on an error. Subject ids are printed where asked for (that is the point of
// subject and breach) and never written to the error stream. The library
// behind the commands is pkg/ledger (queries), pkg/seal (the Merkle trees
// and checkpoints) and pkg/ropa (the record of processing activities).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// errFound is returned by a check that ran and found a problem (exit 2).
var errFound = errors.New("problems found")

type command struct {
	about string
	run   func(ctx context.Context, env *env, args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"subject":           {"the whole history of one subject (consent changes and which won, decisions per stream, notices)", cmdSubject},
		"breach":            {"the subjects whose data reached given streams in a time window, counts first", cmdBreach},
		"completeness":      {"check that every input offset of a topic has exactly one audit record", cmdCompleteness},
		"policies":          {"which policy versions decided events, and when", cmdPolicies},
		"processing-record": {"the record of processing activities generated from the policy (Markdown or JSON)", cmdProcessingRecord},
		"stats":             {"rows per table, consumed positions and held partitions of the ledger (exit 2 while a partition is held)", cmdStats},
		"release":           {"delete the hold of a partition the ledger stopped reading, once an operator has decided (who, when and why kept in the ledger)", cmdRelease},
		"keygen":            {"make a signing key for the audit sealer and print its verifier key", cmdKeygen},
		"verify":            {"recompute the audit's Merkle trees from the topic and check every checkpoint", cmdVerify},
		"prove":             {"print an inclusion proof of an event's audit record against a signed checkpoint", cmdProve},
		"verify-proof":      {"check an inclusion proof offline", cmdVerifyProof},
		"decrypt":           {"print a topic's records with the fields encrypt rules encrypted decrypted (needs the key-encryption key); fields of erased subjects show as erased", cmdDecrypt},
		"audit-export":      {"write every audit record (with its offset) and checkpoint to a file, for offline verification", cmdAuditExport},
	}
}

// env is what a command reads and writes.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		usage(e.stdout)
		if len(args) == 0 {
			return 1
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "consentctl: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return 1
	}
	err := c.run(ctx, e, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFound):
		fmt.Fprintf(e.stderr, "consentctl %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "consentctl %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "consentctl: the compliance team's tool over the consentgate ledger and audit.")
	fmt.Fprintln(w, "\nUsage: consentctl <command> [flags]   (consentctl <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].about)
	}
	fmt.Fprintln(w, "\nThe ledger is LEDGER_DSN (or --dsn): sqlite:<file> or postgres://…; the brokers KAFKA_BROKERS (or --brokers),")
	fmt.Fprintln(w, "reached as the services reach them: KAFKA_TLS, KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE,")
	fmt.Fprintln(w, "KAFKA_TLS_SERVER_NAME, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE (or --kafka-tls...).")
	fmt.Fprintln(w, "Exit status: 0 all well, 2 a check found problems, 1 an error.")
}

// flags returns a flag set for command name that prints its usage to
// e.stdout on --help.
func (e *env) flags(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("consentctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: consentctl %s %s\n\n%s.\n\nFlags:\n", name, args, commands[name].about)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
	}
	return fs
}

// parse parses args, allowing flags after positional arguments
// (consentctl subject ID --json).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
