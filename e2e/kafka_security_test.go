package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// secPassword is the pipeline's SCRAM password: no log line of any service
// may hold it.
const secPassword = "scram-512-e2e-Hx7q-do-not-log"

// TestPipelineOverTLSAndSCRAM runs consent-sync (with its HTTP intake), the
// enforcer and a ledger on SQLite against a devbroker that accepts only
// TLS connections authenticated with SCRAM-SHA-512. A GRANT posted to the
// intake reaches Redis, a granted event reaches compliant.marketing with
// its audit record, the ledger holds both, and consentctl reads the
// brokers the same way. No service logs the password. A plain client is
// refused, and an enforcer given a wrong password stops at start-up saying
// what to check.
func TestPipelineOverTLSAndSCRAM(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 2, Topics: []string{"compliant.marketing"}, TLS: true,
		Users: []brokertest.User{{Mechanism: kafkaconn.ScramSHA512, Name: "consentgate", Password: secPassword}}})
	p := &pipeline{broker: b, redis: redistest.Start(t), prefix: redistest.PrefixFor(t)}
	policyFile, err := filepath.Abs("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sec := b.Security
	secEnv := []string{
		"KAFKA_TLS=true", "KAFKA_TLS_CA_FILE=" + sec.CAFile,
		"KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "KAFKA_SASL_USERNAME=" + sec.SASLUsername, "KAFKA_SASL_PASSWORD_FILE=" + sec.SASLPasswordFile,
	}
	if pw, err := os.ReadFile(sec.SASLPasswordFile); err != nil || strings.TrimSpace(string(pw)) != secPassword {
		t.Fatalf("the password file does not hold the broker's password: %v", err)
	}
	p.env = append([]string{
		"KAFKA_BROKERS=" + b.Addr, "REDIS_ADDR=" + p.redis.Addr(), "POLICY_FILE=" + policyFile, "CONSENT_KEY_PREFIX=" + p.prefix,
		"ENFORCER_SESSION_TIMEOUT=6s", "CONSENT_SYNC_SESSION_TIMEOUT=6s",
	}, secEnv...)
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p.codec = avrocodec.New(cat, nil)
	kc := stream.DefaultConfig()
	kc.Brokers, kc.ClientID, kc.Security = []string{b.Addr}, "e2e-security", sec
	p.writer = stream.NewWriter(kc)
	t.Cleanup(func() { p.writer.Close() })

	// The broker takes nothing but TLS with SCRAM-SHA-512.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	plain := kc
	plain.Security = kafkaconn.Config{}
	if err := stream.Ping(ctx, plain); err == nil {
		t.Fatal("a plain client reached the broker")
	}
	noSASL := kc
	noSASL.Security = kafkaconn.Config{TLS: true, CAFile: sec.CAFile}
	if err := stream.Ping(ctx, noSASL); err == nil {
		t.Fatal("a TLS client without SASL reached the broker")
	}

	// An enforcer with a wrong password stops at start-up, saying what to
	// check, and without the password.
	wrong := filepath.Join(t.TempDir(), "wrong-password")
	if err := os.WriteFile(wrong, []byte("x"+secPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	enforcerBin := proctest.Build(t, "services/enforcer")
	refused := proctest.Start(t, "enforcer-wrong-password", enforcerBin, append(append([]string{}, p.env...), "KAFKA_SASL_PASSWORD_FILE="+wrong))
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	werr := refused.Wait(wctx)
	wcancel()
	if werr == nil || refused.ExitCode() != 1 {
		t.Fatalf("the enforcer with a wrong password: %v (exit %d), want exit 1", werr, refused.ExitCode())
	}
	for _, w := range []string{"SASL authentication failed", "KAFKA_SASL_PASSWORD_FILE"} {
		if !strings.Contains(refused.Output(), w) {
			t.Errorf("the refused enforcer's log does not say %q:\n%s", w, refused.Output())
		}
	}

	// The pipeline, every service over TLS and SCRAM-SHA-512.
	intakeAddr := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	tokens := filepath.Join(t.TempDir(), "intake-tokens")
	if err := os.WriteFile(tokens, []byte(csIntakeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.sync = proctest.Start(t, "consent-sync", proctest.Build(t, "services/consent-sync"),
		append(append([]string{}, p.env...), "CONSENT_INTAKE_ADDR="+intakeAddr, "CONSENT_INTAKE_TOKENS_FILE="+tokens))
	p.enforce = proctest.Start(t, "enforcer", enforcerBin, p.env)
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	led := proctest.Start(t, "ledger", proctest.Build(t, "services/ledger"),
		append([]string{"LEDGER_DSN=" + dsn, "LEDGER_LINGER=20ms", "LEDGER_REFRESH=300ms", "KAFKA_BROKERS=" + b.Addr}, secEnv...))
	for proc, line := range map[*proctest.Proc]string{p.sync: `"msg":"syncing consent"`, p.enforce: `"msg":"enforcing"`, led: `"msg":"consuming"`} {
		if err := proc.WaitFor(line, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Consent granted through the intake (consent-sync's producer), applied
	// by consent-sync's reader.
	code, ans := csPost(t, "http://"+intakeAddr+"/v1/consent-changes", "application/json", `{
		"change_id": "sec-grant-1", "subject_id": "sec-alice", "purpose": "marketing", "action": "GRANT",
		"legal_basis": "CONSENT", "excluded_categories": [], "source": "preference-centre",
		"notice_version": "2026-09", "captured_at": "`+time.Now().UTC().Format(time.RFC3339Nano)+`", "expires_at": null}`)
	if code != http.StatusAccepted {
		t.Fatalf("intake grant: %d %v, want 202", code, ans)
	}
	p.waitConsent(t, "sec-alice", "marketing", consent.StatusGranted)

	// The event, through the enforcer, to the purpose stream.
	p.produce(t, p.email(t, "sec-evt-1", "sec-alice"))
	var got []kafka.Message
	deadline := time.Now().Add(60 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		got = b.ReadAll(t, "compliant.marketing", 300*time.Millisecond, 10*time.Second)
	}
	if len(got) != 1 || string(got[0].Key) != "sec-alice" {
		t.Fatalf("compliant.marketing holds %d records, want the granted event of sec-alice", len(got))
	}
	rows := p.audit(t, 1)
	if len(rows) != 1 || rows[0].eventID != "sec-evt-1" || rows[0].decision != "PASSED" || rows[0].changeID != "sec-grant-1" {
		t.Fatalf("audit %+v, want sec-evt-1 PASSED by sec-grant-1", rows)
	}

	// The ledger holds the change and the audit record, and consentctl
	// reads the brokers over TLS and SCRAM too.
	sq := ctl{t: t, bin: proctest.Build(t, "services/consentctl"), env: append([]string{"LEDGER_DSN=" + dsn, "KAFKA_BROKERS=" + b.Addr}, secEnv...)}
	var h ledger.SubjectHistory
	for deadline := time.Now().Add(60 * time.Second); ; {
		h = ledger.SubjectHistory{}
		if err := json.Unmarshal([]byte(sq.must(0, "subject", "sec-alice", "--json")), &h); err != nil {
			t.Fatal(err)
		}
		if len(h.Changes) == 1 && len(h.Audits) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger's history of sec-alice after 60s: %d changes, %d audits; want 1 and 1", len(h.Changes), len(h.Audits))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if h.Changes[0].ChangeID != "sec-grant-1" || h.Audits[0].EventID != "sec-evt-1" || h.Audits[0].Outcome == "" {
		t.Errorf("the ledger holds change %q and audit %q (%s), want sec-grant-1 and sec-evt-1", h.Changes[0].ChangeID, h.Audits[0].EventID, h.Audits[0].Outcome)
	}
	if out := sq.until(60*time.Second, "completeness", "--topic", "customer.events"); !strings.Contains(out, "complete") || strings.Contains(out, "NOT complete") {
		t.Errorf("consentctl completeness over TLS and SCRAM:\n%s", out)
	}

	// Every service says how it connects, and none shows the password.
	procs := []*proctest.Proc{p.sync, p.enforce, led, refused, b.Proc}
	for _, proc := range procs[:3] {
		if !strings.Contains(proc.Output(), `"kafka_sasl_mechanism":"SCRAM-SHA-512"`) || !strings.Contains(proc.Output(), `"kafka_tls":true`) {
			t.Errorf("%s does not log its Kafka security settings:\n%s", proc.Name, proc.Output())
		}
	}
	for _, proc := range procs {
		if strings.Contains(proc.Output(), secPassword) {
			t.Errorf("%s logged the SASL password", proc.Name)
		}
	}
	for _, proc := range []*proctest.Proc{p.sync, p.enforce, led} {
		if err := proc.Stop(30 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s did not stop cleanly: %v", proc.Name, err)
		}
		if strings.Contains(proc.Output(), secPassword) {
			t.Errorf("%s logged the SASL password while stopping", proc.Name)
		}
	}
}
