package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/stream"
)

const adminPassword = "provision-admin-pw-1"

// provisionEnv is the environment of a provision run against b as admin,
// with topic names the devbroker does not seed.
func provisionEnv(b *brokertest.Broker, policyFile string, extra ...string) map[string]string {
	env := map[string]string{
		"KAFKA_BROKERS": b.Addr, "POLICY_FILE": policyFile,
		"KAFKA_SASL_MECHANISM": b.Security.SASLMechanism, "KAFKA_SASL_USERNAME": b.Security.SASLUsername, "KAFKA_SASL_PASSWORD_FILE": b.Security.SASLPasswordFile,
		"PROVISION_PARTITIONS": "2", "PROVISION_SMALL_PARTITIONS": "1", "PROVISION_REPLICATION_FACTOR": "1", "PROVISION_MIN_INSYNC_REPLICAS": "1",
		"ENFORCER_TOPICS": "t.events", "CONSENT_SYNC_TOPICS": "t.consent", "AUDIT_TOPIC": "t.audit",
		"REVOCATIONS_TOPIC": "t.revocations", "LEDGER_CHECKPOINTS_TOPIC": "t.checkpoints",
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

func runProvision(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &out, &errb)
	return code, out.String(), errb.String()
}

// TestApplyIsIdempotent applies the plan to a devbroker with ACLs on (as a
// superuser): the first apply creates every topic and ACL, the second
// changes nothing and says so, and the brokers then hold exactly the
// plan's topics with its configuration and its ACLs.
func TestApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{ACLs: true,
		Users: []brokertest.User{{Mechanism: kafkaconn.ScramSHA256, Name: "admin", Password: adminPassword, Superuser: true}}})
	env := provisionEnv(b, writePolicy(t, twoStreams))

	code, out, errOut := runProvision(t, env, "apply", "--json")
	if code != 0 {
		t.Fatalf("first apply: exit %d\n%s\n%s", code, out, errOut)
	}
	var first Report
	if err := json.Unmarshal([]byte(out), &first); err != nil {
		t.Fatalf("apply --json: %v\n%s", err, out)
	}
	plan := derive(t, twoStreams, testConfig(env))
	if len(first.Created) != len(plan.Topics) || len(first.AsPlanned) != 0 || len(first.Differs) != 0 {
		t.Errorf("first apply: created %v, as planned %v, differs %v; want all %d topics created", first.Created, first.AsPlanned, first.Differs, len(plan.Topics))
	}
	if len(first.ACLsAdded) != len(plan.ACLs) || first.ACLsPresent != 0 || len(first.Beyond) != 0 {
		t.Errorf("first apply: %d ACLs added, %d present, %d beyond; want %d added", len(first.ACLsAdded), first.ACLsPresent, len(first.Beyond), len(plan.ACLs))
	}

	code, out, errOut = runProvision(t, env, "apply")
	if code != 0 {
		t.Fatalf("second apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "nothing to do: the cluster already matches the plan") || strings.Contains(out, "created topic") || strings.Contains(out, "added ACL") {
		t.Errorf("second apply does not say it changed nothing:\n%s", out)
	}
	if !strings.Contains(out, "31 ACL(s) of the plan were present already") {
		t.Errorf("second apply does not count the ACLs present:\n%s", out)
	}

	// What the brokers hold, read back with kafka-go.
	kc := stream.DefaultConfig()
	kc.Brokers, kc.Security = []string{b.Addr}, b.Security
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	again, err := Apply(ctx, kc.Client(), plan, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed() || len(again.AsPlanned) != len(plan.Topics) || again.ACLsPresent != len(plan.ACLs) {
		t.Errorf("third apply: %+v, want every topic as planned and every ACL present", again)
	}
	have, err := describeACLs(ctx, kc.Client())
	if err != nil {
		t.Fatal(err)
	}
	if len(have.allow) != len(plan.ACLs) || len(have.deny) != 0 {
		t.Errorf("the brokers hold %d allow and %d deny ACLs, the plan has %d allow", len(have.allow), len(have.deny), len(plan.ACLs))
	}
	for _, a := range plan.ACLs {
		if _, ok := have.allow[a.key()]; !ok {
			t.Errorf("the brokers lack %s", a)
		}
	}

	// An ACL someone else gave the marketing principal is more than the
	// plan: apply says so, never that the cluster matches, fails, and
	// leaves it.
	extra := ACL{Principal: "User:marketing", Host: "*", Operation: OpRead, ResourceType: ResourceTopic, ResourceName: "t.audit", PatternType: PatternLiteral}
	if resp, err := kc.Client().CreateACLs(ctx, &kafka.CreateACLsRequest{ACLs: []kafka.ACLEntry{entry(extra)}}); err != nil || resp.Errors[0] != nil {
		t.Fatalf("create an ACL beyond the plan: %v %v", err, resp)
	}
	code, out, errOut = runProvision(t, env, "apply")
	if code != 1 || !strings.Contains(out, "beyond the plan: User:marketing allow READ TOPIC t.audit LITERAL from *") ||
		!strings.Contains(out, "the cluster holds 1 ACL rules beyond the plan") || strings.Contains(out, "matches the plan") ||
		!strings.Contains(errOut, "the cluster holds 1 ACL rules beyond the plan") || !strings.Contains(errOut, "--prune") {
		t.Errorf("apply with an ACL beyond the plan: exit %d, want 1 naming the rule and --prune\n%s\n%s", code, out, errOut)
	}
	if have, err := describeACLs(ctx, kc.Client()); err != nil || have.allow[extra.key()].Principal == "" {
		t.Errorf("the ACL beyond the plan is gone (%v): apply without --prune must not remove ACLs", err)
	}

	// --prune deletes exactly that rule, and says so; then the cluster
	// matches the plan.
	code, out, errOut = runProvision(t, env, "apply", "--prune")
	if code != 0 || !strings.Contains(out, "removed ACL User:marketing allow READ TOPIC t.audit LITERAL from * (beyond the plan)") || !strings.Contains(out, "done: 0 topic(s) created, 0 ACL(s) added, 1 removed") {
		t.Errorf("apply --prune: exit %d\n%s\n%s", code, out, errOut)
	}
	have, err = describeACLs(ctx, kc.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := have.allow[extra.key()]; ok || len(have.allow) != len(plan.ACLs) {
		t.Errorf("after --prune the brokers hold %d ACLs (the extra one still: %v), want the plan's %d", len(have.allow), ok, len(plan.ACLs))
	}
	if code, out, errOut := runProvision(t, env, "apply"); code != 0 || !strings.Contains(out, "nothing to do: the cluster already matches the plan") {
		t.Errorf("apply after --prune: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestApplyReportsWhatDiffers: the devbroker seeds consent.changes and
// consent.audit with 3 partitions and the broker's retention (7 days). An
// apply of the default names finds them, says what differs, leaves them
// as they are and fails; the topics it lacked it creates.
func TestApplyReportsWhatDiffers(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{ACLs: true,
		Users: []brokertest.User{{Mechanism: kafkaconn.ScramSHA512, Name: "admin", Password: adminPassword, Superuser: true}}})
	env := provisionEnv(b, writePolicy(t, twoStreams), "ENFORCER_TOPICS=", "CONSENT_SYNC_TOPICS=", "AUDIT_TOPIC=", "REVOCATIONS_TOPIC=", "LEDGER_CHECKPOINTS_TOPIC=",
		"PROVISION_PARTITIONS=3")
	code, out, errOut := runProvision(t, env, "apply")
	if code != 1 {
		t.Fatalf("apply over differing topics: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"topic consent.changes DIFFERS from the plan: retention.ms=604800000, the plan has -1",
		"topic consent.audit DIFFERS from the plan: retention.ms=604800000, the plan has -1",
		"topic customer.events.dlq DIFFERS from the plan: 3 partitions, the plan has 1",
		"created topic consent.changes.dlq", "created topic compliant.marketing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "existing topic(s) differ from the plan, and were left as they are") || !strings.Contains(errOut, "kafka-configs.sh --alter") {
		t.Errorf("apply's error does not say what to do:\n%s", errOut)
	}
	// Run again: still different, still failing, nothing created twice.
	code, out, _ = runProvision(t, env, "apply")
	if code != 1 || strings.Contains(out, "created topic") || strings.Contains(out, "added ACL") || !strings.Contains(out, "consent.changes DIFFERS") {
		t.Errorf("second apply over differing topics: exit %d\n%s", code, out)
	}
}

// TestApplyNeedsAnAdministrator: a principal without rights on the
// cluster is told what it lacks; nothing is created.
func TestApplyNeedsAnAdministrator(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{ACLs: true,
		Users: []brokertest.User{{Mechanism: kafkaconn.ScramSHA512, Name: "nobody", Password: adminPassword}}})
	code, out, errOut := runProvision(t, provisionEnv(b, writePolicy(t, twoStreams)), "apply")
	if code != 1 || strings.Contains(out, "created topic") {
		t.Fatalf("apply as an unprivileged user: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "run provision as a principal allowed to") {
		t.Errorf("the error does not say which principal to run as:\n%s", errOut)
	}
}

// TestApplyWithoutACLsOnAPlainBroker: PROVISION_ACLS=false creates the
// topics only (the compose cluster has no authorizer).
func TestApplyWithoutACLsOnAPlainBroker(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	env := provisionEnv(b, writePolicy(t, twoStreams), "KAFKA_SASL_MECHANISM=", "KAFKA_SASL_USERNAME=", "KAFKA_SASL_PASSWORD_FILE=", "PROVISION_ACLS=false")
	code, out, errOut := runProvision(t, env, "apply")
	if code != 0 || !strings.Contains(out, "created topic t.consent") || !strings.Contains(out, "ACLs not applied (PROVISION_ACLS=false)") {
		t.Fatalf("apply without ACLs: exit %d\n%s\n%s", code, out, errOut)
	}
	kc := stream.DefaultConfig()
	kc.Brokers = []string{b.Addr}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := stream.CheckKeptForever(ctx, kc, "t.consent"); err != nil {
		t.Errorf("the consent topic as consent-sync checks it: %v", err)
	}
	if code, out, _ := runProvision(t, env, "apply"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("second apply without ACLs: exit %d\n%s", code, out)
	}
}

// TestApplyWithAWrongPasswordSaysWhatToCheck: the brokers refuse the
// password; apply stops saying which settings to check, and shows neither
// password.
func TestApplyWithAWrongPasswordSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{ACLs: true,
		Users: []brokertest.User{{Mechanism: kafkaconn.ScramSHA512, Name: "admin", Password: adminPassword, Superuser: true}}})
	wrong := filepath.Join(t.TempDir(), "wrong")
	const wrongPassword = "wrong-secret-5f1e"
	if err := os.WriteFile(wrong, []byte(wrongPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runProvision(t, provisionEnv(b, writePolicy(t, twoStreams), "KAFKA_SASL_PASSWORD_FILE="+wrong), "apply")
	if code != 1 || out != "" || !strings.Contains(errOut, "SASL authentication failed") || !strings.Contains(errOut, "KAFKA_SASL_PASSWORD_FILE") {
		t.Fatalf("apply with a wrong password: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(errOut+out, wrongPassword) || strings.Contains(errOut+out, adminPassword) {
		t.Errorf("apply showed a password:\n%s", errOut)
	}
}
