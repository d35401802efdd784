// Package e2e runs the services as real processes against the embedded
// broker process (over TCP) and a real redis-server, and checks what comes
// out of the topics.
package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/e2e/stack"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

type pipeline struct {
	// stack is what the pipeline runs on (nil when a test assembled the
	// pipeline by hand); broker is stack.Broker() (a client-only handle on
	// the container stack) and redis the local stack's redis-server (nil
	// on the container stack).
	stack   stack.Stack
	broker  *brokertest.Broker
	redis   *redistest.Server
	prefix  string
	env     []string
	codec   *avrocodec.Codec
	writer  *kafka.Writer
	sync    *proctest.Proc
	enforce *proctest.Proc
}

func startPipeline(t *testing.T) *pipeline {
	return startPipelineWith(t, "testdata/policy.yaml", []string{"compliant.marketing"})
}

// startPipelineWith starts the broker process (with the output topics),
// a redis-server, consent-sync and the enforcer on the given policy file:
// the local stack, whatever CONSENTGATE_E2E_STACK says, since the tests
// that call it drive the redis-server process (pause, snapshot) or have
// not been ported to the stack abstraction; only the pipeline e2e
// (startPipelineOn) and the fault suite run on either stack.
func startPipelineWith(t *testing.T, policy string, outputs []string, extraEnv ...string) *pipeline {
	t.Helper()
	st := stack.StartKind(t, stack.Choice{Kind: stack.KindLocal, Reason: "this test runs on the local stack only"},
		stack.Options{Partitions: 2, Topics: outputs})
	return startPipelineOn(t, st, policy, extraEnv...)
}

// startPipelineOn starts consent-sync and the enforcer on the given policy
// file against st, which holds the policy's output topics.
func startPipelineOn(t *testing.T, st stack.Stack, policy string, extraEnv ...string) *pipeline {
	t.Helper()
	p := &pipeline{
		stack:  st,
		broker: st.Broker(),
		redis:  st.LocalRedis(),
		prefix: redistest.PrefixFor(t),
	}
	policyFile, err := filepath.Abs(policy)
	if err != nil {
		t.Fatal(err)
	}
	p.env = []string{
		"KAFKA_BROKERS=" + strings.Join(st.Brokers(), ","),
		"REDIS_ADDR=" + st.RedisAddr(),
		"POLICY_FILE=" + policyFile,
		"CONSENT_KEY_PREFIX=" + p.prefix,
		"ENFORCER_SESSION_TIMEOUT=6s",
		"CONSENT_SYNC_SESSION_TIMEOUT=6s",
	}
	p.env = append(p.env, extraEnv...)
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p.codec = avrocodec.New(cat, nil)
	cfg := stream.DefaultConfig()
	cfg.Brokers = st.Brokers()
	p.writer = stream.NewWriter(cfg)
	t.Cleanup(func() { p.writer.Close() })

	p.sync = proctest.Start(t, "consent-sync", proctest.Build(t, "services/consent-sync"), p.env)
	p.enforce = proctest.Start(t, "enforcer", proctest.Build(t, "services/enforcer"), p.env)
	for _, proc := range []*proctest.Proc{p.sync, p.enforce} {
		if err := proc.WaitFor(`"msg":"`+map[bool]string{true: "syncing consent", false: "enforcing"}[proc == p.sync]+`"`, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *pipeline) produce(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.WriteAll(ctx, p.writer, msgs, nil); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func (p *pipeline) change(t *testing.T, c consent.Change) kafka.Message {
	t.Helper()
	b, err := p.codec.EncodeSingle("consentgate.consent.ConsentChange", c.Native())
	if err != nil {
		t.Fatalf("encode change: %v", err)
	}
	return kafka.Message{Topic: "consent.changes", Key: []byte(c.SubjectID), Value: b}
}

func (p *pipeline) email(t *testing.T, eventID, subject string) kafka.Message {
	t.Helper()
	v := map[string]any{
		"event_id": eventID, "subject_id": subject, "occurred_at": time.Now(),
		"email": subject + "@mail.example", "campaign_id": "cmp-1", "message_id": "msg-1",
		"action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": map[string]any{"string": "198.51.100.7"},
	}
	b, err := p.codec.EncodeSingle("consentgate.events.EmailEngagement", v)
	if err != nil {
		t.Fatalf("encode event: %v", err)
	}
	return kafka.Message{Topic: "customer.events", Key: []byte(subject), Value: b}
}

// waitConsent polls Redis until the subject's purpose has the wanted status.
func (p *pipeline) waitConsent(t *testing.T, subject, purpose string, want consent.Status) {
	t.Helper()
	store := consent.NewStore(p.redisClient(t), p.prefix)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		states, err := store.Lookup(context.Background(), []string{subject})
		if err == nil && states[subject] != nil && states[subject].Purposes[purpose].Status == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("consent-sync did not store %s for the purpose %s within 30s", want, purpose)
}

// redisClient is a new client of the pipeline's Redis.
func (p *pipeline) redisClient(t *testing.T) *redis.Client {
	t.Helper()
	if p.stack != nil {
		return p.stack.RedisClient(t)
	}
	return p.redis.Client(t)
}

// auditRow is one stream's decision of an audit record.
type auditRow struct{ eventID, subject, stream, purpose, decision, reason, changeID string }

// audit waits until the audit records hold want decisions (events times
// streams) and returns them.

func (p *pipeline) audit(t *testing.T, want int) []auditRow {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var rows []auditRow
	for time.Now().Before(deadline) {
		rows = rows[:0]
		for _, a := range p.auditRecs(t) {
			for _, d := range a.Decisions {
				rows = append(rows, auditRow{a.EventID, a.Subject, d.Stream, a.Purposes[d.Stream], d.Decision, d.Reason, a.ChangeIDs[d.Stream]})
			}
		}
		if len(rows) >= want {
			return rows
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("got %d audited decisions within 60s, want %d: %+v", len(rows), want, rows)
	return nil
}

// TestOnlyGrantedEventReachesPurposeStream is the walking skeleton's promise:
// a granted and an ungranted event for the same purpose; only the granted
// one arrives on compliant.marketing, both are audited, a poison record goes
// to the dead-letter topic with its reason, and both services stop cleanly.
//
// It runs on either stack (e2e/stack: CONSENTGATE_E2E_STACK).
func TestOnlyGrantedEventReachesPurposeStream(t *testing.T) {
	p := startPipelineOn(t, stack.Start(t, stack.Options{Partitions: 2, Topics: []string{"compliant.marketing"}}), "testdata/policy.yaml")
	now := time.Now()
	p.produce(t, p.change(t, consent.Change{
		ChangeID: "chg-1", SubjectID: "cust-granted", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now,
	}), p.change(t, consent.Change{
		ChangeID: "chg-2", SubjectID: "cust-denied", Purpose: "marketing", Action: consent.ActionDeny,
		LegalBasis: consent.BasisConsent, Source: "cookie-banner", NoticeVersion: "2026-09", CapturedAt: now,
	}))
	p.waitConsent(t, "cust-granted", "marketing", consent.StatusGranted)
	p.waitConsent(t, "cust-denied", "marketing", consent.StatusDenied)

	p.produce(t,
		p.email(t, "evt-granted", "cust-granted"),
		p.email(t, "evt-denied", "cust-denied"),
		p.email(t, "evt-unknown", "cust-never-asked"),
		kafka.Message{Topic: "customer.events", Key: []byte("poison"), Value: []byte("\xc3\x01garbage")},
	)

	rows := p.audit(t, 3)
	// The poison record has its DEAD_LETTERED audit record too: every
	// input offset is accounted for.
	var dead []fsAuditRec
	for _, a := range p.auditRecs(t) {
		if a.Outcome == fsDeadLettered {
			dead = append(dead, a)
		}
	}
	if len(dead) != 1 || dead[0].DLQReason != "undecodable" || dead[0].SrcTopic != "customer.events" || dead[0].EventID != "" || dead[0].Subject != "" {
		t.Errorf("DEAD_LETTERED audit records %+v, want one for the poison record (undecodable)", dead)
	}
	byEvent := map[string]auditRow{}
	for _, r := range rows {
		if _, dup := byEvent[r.eventID]; dup {
			t.Errorf("event %s audited twice for one stream", r.eventID)
		}
		byEvent[r.eventID] = r
	}
	for _, w := range []auditRow{
		{eventID: "evt-granted", subject: "cust-granted", stream: "compliant.marketing", purpose: "marketing", decision: "PASSED", reason: "granted", changeID: "chg-1"},
		{eventID: "evt-denied", subject: "cust-denied", stream: "compliant.marketing", purpose: "marketing", decision: "DROPPED", reason: "denied", changeID: "chg-2"},
		{eventID: "evt-unknown", subject: "cust-never-asked", stream: "compliant.marketing", purpose: "marketing", decision: "DROPPED", reason: "unknown_subject"},
	} {
		if got := byEvent[w.eventID]; got != w {
			t.Errorf("audit of %s = %+v, want %+v", w.eventID, got, w)
		}
	}

	out := p.broker.ReadAll(t, "compliant.marketing", 500*time.Millisecond, 10*time.Second)
	if len(out) != 1 {
		t.Fatalf("compliant.marketing holds %d records, want exactly the granted one", len(out))
	}
	if id, _ := stream.Header(out[0], "consentgate.event_id"); id != "evt-granted" {
		t.Errorf("compliant.marketing holds event %q, want evt-granted", id)
	}
	if string(out[0].Key) != "cust-granted" {
		t.Errorf("output key %q, want the input key", out[0].Key)
	}

	dlq := p.broker.ReadAll(t, "customer.events.dlq", 500*time.Millisecond, 10*time.Second)
	if len(dlq) != 1 {
		t.Fatalf("dead-letter topic holds %d records, want the poison one", len(dlq))
	}
	if string(dlq[0].Value) != "\xc3\x01garbage" {
		t.Errorf("dead letter value changed: %q", dlq[0].Value)
	}
	if r, _ := stream.Header(dlq[0], "consentgate.dlq.reason"); r != "undecodable" {
		t.Errorf("dead letter reason %q, want undecodable", r)
	}

	for _, proc := range []*proctest.Proc{p.enforce, p.sync} {
		if err := proc.Stop(30 * time.Second); err != nil {
			t.Errorf("%s did not stop cleanly on SIGTERM: %v", proc.Name, err)
		}
	}
	for _, proc := range []*proctest.Proc{p.enforce, p.sync} {
		for _, secret := range []string{"cust-granted", "cust-denied", "mail.example", "198.51.100.7"} {
			if strings.Contains(proc.Output(), secret) {
				t.Errorf("%s logged personal data (%q)", proc.Name, secret)
			}
		}
	}
}

// TestBadSettingStopsStartup checks that a missing or bad setting stops a
// service at once with a message naming what to set, and that --help lists
// every setting with its environment variable.
func TestBadSettingStopsStartup(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"enforcer", "consent-sync"} {
		bin := proctest.Build(t, "services/"+svc)
		bad := proctest.Start(t, svc, bin, []string{"KAFKA_BROKERS=nohostport", "REDIS_ADDR=", "REDIS_TIMEOUT=soon", "POLICY_FILE="})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := bad.Wait(ctx)
		cancel()
		if err == nil || bad.ExitCode() != 1 {
			t.Fatalf("%s with bad settings: exit %d (%v), want 1", svc, bad.ExitCode(), err)
		}
		wants := []string{"KAFKA_BROKERS", "REDIS_TIMEOUT", "REDIS_ADDR"}
		if svc == "enforcer" {
			wants = append(wants, "POLICY_FILE")
		}
		for _, w := range wants {
			if !strings.Contains(bad.Output(), w) {
				t.Errorf("%s start-up error does not name %s:\n%s", svc, w, bad.Output())
			}
		}

		help := proctest.Start(t, svc+"-help", bin, nil, "--help")
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
		if err := help.Wait(ctx); err != nil {
			t.Errorf("%s --help exit: %v", svc, err)
		}
		cancel()
		for _, w := range []string{"KAFKA_BROKERS", "REDIS_ADDR", "REDIS_URL", "POLICY_FILE", "SCHEMA_REGISTRY_URL", "127.0.0.1:9092"} {
			if !strings.Contains(help.Output(), w) {
				t.Errorf("%s --help does not list %s", svc, w)
			}
		}
	}
}
