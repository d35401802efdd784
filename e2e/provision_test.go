package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// provPolicy has two purpose streams, so that each consumer principal has
// another stream it must be refused.
const provPolicy = `purposes:
  - id: marketing
    description: Email campaigns
    legal_bases: [CONSENT]
  - id: analytics
    description: Product analytics
    legal_bases: [CONSENT]
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    on_missing_consent: drop
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: drop
`

// provTopics names the pipeline's topics apart from those the devbroker
// seeds (customer.events, consent.changes, consent.audit, ...), which
// provision would report as differing from the plan. The services and
// provision read the same variables.
var provTopics = []string{
	"ENFORCER_TOPICS=shop.events", "CONSENT_SYNC_TOPICS=shop.consent", "AUDIT_TOPIC=shop.audit",
	"REVOCATIONS_TOPIC=shop.revocations", "LEDGER_CHECKPOINTS_TOPIC=shop.checkpoints",
}

// TestProvisionLeastPrivilege: a devbroker that takes only TLS with
// SCRAM-SHA-512 and checks ACLs, provisioned by `provision apply` run as a
// superuser (twice: the second changes nothing). Then, each under nothing
// but the provisioned ACLs: consent-sync (with its intake) applies a
// grant and publishes a revocation notice, the real enforcer passes a
// granted event to compliant.marketing, dead-letters a poison record and
// audits both, the ledger ingests the changes and the audit and seals it, and the
// marketing principal reads compliant.marketing in a group of its prefix.
// The marketing principal is refused, with authorization errors from the
// broker (not timeouts), the input, the consent topic, the audit, the other
// stream, the seeded default topics, writing its own stream and the groups
// of others.
func TestProvisionLeastPrivilege(t *testing.T) {
	t.Parallel()
	const mech = kafkaconn.ScramSHA512
	names := []string{"admin", "enforcer", "consent-sync", "ledger", "marketing", "analytics"}
	var users []brokertest.User
	for i, n := range names {
		users = append(users, brokertest.User{Mechanism: mech, Name: n, Password: fmt.Sprintf("prov-%s-pw-%d", n, i), Superuser: n == "admin"})
	}
	b := brokertest.Start(t, brokertest.Options{Partitions: 2, TLS: true, Users: users, ACLs: true})
	secEnv := func(user string) []string {
		s := b.SecurityAs(mech, user)
		return []string{"KAFKA_BROKERS=" + b.Addr, "KAFKA_TLS=true", "KAFKA_TLS_CA_FILE=" + s.CAFile,
			"KAFKA_SASL_MECHANISM=" + mech, "KAFKA_SASL_USERNAME=" + user, "KAFKA_SASL_PASSWORD_FILE=" + s.SASLPasswordFile}
	}
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(provPolicy), 0o600); err != nil {
		t.Fatal(err)
	}

	// Provision, as the superuser, for a single dev broker.
	provBin := proctest.Build(t, "services/provision")
	provEnv := append(append(secEnv("admin"), provTopics...), "POLICY_FILE="+policyFile,
		"PROVISION_PARTITIONS=2", "PROVISION_SMALL_PARTITIONS=1", "PROVISION_REPLICATION_FACTOR=1", "PROVISION_MIN_INSYNC_REPLICAS=1")
	apply := func(name string) string {
		t.Helper()
		p := proctest.Start(t, name, provBin, provEnv, "apply")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, p.Output())
		}
		return p.Output()
	}
	first := apply("provision-apply")
	for _, want := range []string{"created topic shop.consent", "created topic compliant.analytics",
		"added ACL User:marketing allow READ TOPIC compliant.marketing LITERAL from *", "added ACL User:marketing allow READ GROUP marketing. PREFIXED from *",
		"done: 12 topic(s) created, 31 ACL(s) added"} {
		if !strings.Contains(first, want) {
			t.Errorf("the first apply does not say %q:\n%s", want, first)
		}
	}
	if second := apply("provision-apply-again"); !strings.Contains(second, "nothing to do: the cluster already matches the plan") || strings.Contains(second, "created") || strings.Contains(second, "added ACL") {
		t.Errorf("the second apply changed something:\n%s", second)
	}

	// The pipeline, each service as its own principal.
	rs := redistest.Start(t)
	p := &pipeline{broker: b, redis: rs, prefix: redistest.PrefixFor(t)}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p.codec = avrocodec.New(cat, nil)
	adminKafka := stream.DefaultConfig()
	adminKafka.Brokers, adminKafka.ClientID, adminKafka.Security = []string{b.Addr}, "e2e-admin", b.SecurityAs(mech, "admin")
	p.writer = stream.NewWriter(adminKafka) // stands for the upstream producers of shop.events
	t.Cleanup(func() { p.writer.Close() })
	common := append([]string{"REDIS_ADDR=" + rs.Addr(), "POLICY_FILE=" + policyFile, "CONSENT_KEY_PREFIX=" + p.prefix,
		"ENFORCER_SESSION_TIMEOUT=6s", "CONSENT_SYNC_SESSION_TIMEOUT=6s"}, provTopics...)
	intakeAddr := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	tokens := filepath.Join(t.TempDir(), "intake-tokens")
	if err := os.WriteFile(tokens, []byte(csIntakeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.sync = proctest.Start(t, "consent-sync", proctest.Build(t, "services/consent-sync"),
		append(append(secEnv("consent-sync"), common...), "CONSENT_INTAKE_ADDR="+intakeAddr, "CONSENT_INTAKE_TOKENS_FILE="+tokens))
	p.enforce = proctest.Start(t, "enforcer", proctest.Build(t, "services/enforcer"), append(secEnv("enforcer"), common...))
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	skey, _, err := seal.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "seal.key")
	if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	led := proctest.Start(t, "ledger", proctest.Build(t, "services/ledger"), append(secEnv("ledger"),
		"LEDGER_DSN="+dsn, "LEDGER_LINGER=20ms", "LEDGER_REFRESH=300ms", "LEDGER_SEAL_KEY_FILE="+keyFile, "LEDGER_SEAL_INTERVAL=300ms", "LEDGER_CHANGES_TOPIC=shop.consent", "LEDGER_AUDIT_TOPIC=shop.audit",
		"REVOCATIONS_TOPIC=shop.revocations", "LEDGER_CHECKPOINTS_TOPIC=shop.checkpoints", "LEDGER_DEAD_LETTER_TOPICS=shop.events.dlq,shop.consent.dlq"))
	for proc, line := range map[*proctest.Proc]string{p.sync: `"msg":"syncing consent"`, p.enforce: `"msg":"enforcing"`, led: `"msg":"consuming"`} {
		if err := proc.WaitFor(line, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	post := func(id, action string) {
		t.Helper()
		code, ans := csPost(t, "http://"+intakeAddr+"/v1/consent-changes", "application/json", `{
			"change_id": "`+id+`", "subject_id": "prov-alice", "purpose": "marketing", "action": "`+action+`",
			"legal_basis": "CONSENT", "excluded_categories": [], "source": "preference-centre",
			"notice_version": "2026-09", "captured_at": "`+time.Now().UTC().Format(time.RFC3339Nano)+`", "expires_at": null}`)
		if code != http.StatusAccepted {
			t.Fatalf("intake %s: %d %v, want 202", action, code, ans)
		}
	}
	post("prov-grant-1", "GRANT")
	p.waitConsent(t, "prov-alice", "marketing", consent.StatusGranted)
	ev := p.email(t, "prov-evt-1", "prov-alice")
	ev.Topic = "shop.events"
	p.produce(t, ev, kafka.Message{Topic: "shop.events", Key: []byte("poison"), Value: []byte("\xc3\x01garbage")})

	// The marketing principal reads its stream in a group of its prefix.
	mkt := b.SecurityAs(mech, "marketing")
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: "marketing.newsletter", Topic: "compliant.marketing",
		StartOffset: kafka.FirstOffset, Dialer: mkt.Dialer("e2e-marketing"), MaxWait: 200 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	m, err := r.ReadMessage(rctx)
	rcancel()
	if err != nil {
		t.Fatalf("the marketing principal reading compliant.marketing in group marketing.newsletter: %v", err)
	}
	if string(m.Key) != "prov-alice" {
		t.Errorf("compliant.marketing holds a record of %q, want the granted event of prov-alice", m.Key)
	}
	if got := b.ReadAll(t, "compliant.analytics", 300*time.Millisecond, 5*time.Second); len(got) != 0 {
		t.Errorf("compliant.analytics holds %d records; the subject granted only marketing", len(got))
	}
	if dl := b.ReadAll(t, "shop.events.dlq", 300*time.Millisecond, 20*time.Second); len(dl) != 1 || string(dl[0].Key) != "poison" {
		t.Errorf("shop.events.dlq holds %d records, want the poison record", len(dl))
	}
	if au := b.ReadAll(t, "shop.audit", 300*time.Millisecond, 20*time.Second); len(au) != 2 {
		t.Errorf("shop.audit holds %d records, want 2 (the event and the dead letter)", len(au))
	}

	// A withdrawal: consent-sync publishes the revocation notice.
	post("prov-withdraw-1", "WITHDRAW")
	p.waitConsent(t, "prov-alice", "marketing", consent.StatusWithdrawn)
	var notices []kafka.Message
	for deadline := time.Now().Add(30 * time.Second); len(notices) == 0 && time.Now().Before(deadline); {
		notices = b.ReadAll(t, "shop.revocations", 300*time.Millisecond, 10*time.Second)
	}
	if len(notices) != 1 {
		t.Errorf("shop.revocations holds %d notices, want 1", len(notices))
	}

	// The ledger, under its ACLs, holds both changes and the audit records.
	sq := ctl{t: t, bin: proctest.Build(t, "services/consentctl"), env: []string{"LEDGER_DSN=" + dsn}}
	for deadline := time.Now().Add(60 * time.Second); ; {
		var h ledger.SubjectHistory
		if err := json.Unmarshal([]byte(sq.must(0, "subject", "prov-alice", "--json")), &h); err != nil {
			t.Fatal(err)
		}
		if len(h.Changes) == 2 && len(h.Audits) == 1 && h.Audits[0].EventID == "prov-evt-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger's history of prov-alice after 60s: %d changes, %d audits; want 2 and 1", len(h.Changes), len(h.Audits))
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The ledger's sealer publishes signed checkpoints of the audit.
	var cps []kafka.Message
	for deadline := time.Now().Add(30 * time.Second); len(cps) == 0 && time.Now().Before(deadline); {
		cps = b.ReadAll(t, "shop.checkpoints", 300*time.Millisecond, 10*time.Second)
	}
	if len(cps) == 0 {
		t.Error("the ledger published no audit checkpoint to shop.checkpoints within 30s")
	}

	// Refused, each with the broker's authorization error.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, topic := range []string{"shop.events", "shop.consent", "shop.audit", "shop.revocations", "shop.events.dlq", "compliant.analytics", "customer.events", "consent.audit"} {
		if err := describeAs(ctx, mkt, b.Addr, topic); !errors.Is(err, kafka.TopicAuthorizationFailed) {
			t.Errorf("the marketing principal describing %s: %v, want %v", topic, err, kafka.TopicAuthorizationFailed)
		}
		if err := fetchAs(ctx, mkt, b.Addr, topic); !errors.Is(err, kafka.TopicAuthorizationFailed) {
			t.Errorf("the marketing principal fetching %s: %v, want %v", topic, err, kafka.TopicAuthorizationFailed)
		}
	}
	if err := fetchAs(ctx, mkt, b.Addr, "compliant.marketing"); err != nil {
		t.Errorf("the marketing principal fetching compliant.marketing: %v", err)
	}
	if err := produceAs(ctx, mkt, b.Addr, "compliant.marketing"); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("the marketing principal writing compliant.marketing: %v, want %v", err, kafka.TopicAuthorizationFailed)
	}
	for _, group := range []string{"analytics.dashboards", "consentgate-enforcer", "consentgate-consent-sync", "newsletter"} {
		if err := coordinatorAs(ctx, mkt, b.Addr, group); !errors.Is(err, kafka.GroupAuthorizationFailed) {
			t.Errorf("the marketing principal finding the coordinator of group %s: %v, want %v", group, err, kafka.GroupAuthorizationFailed)
		}
	}
	if err := coordinatorAs(ctx, mkt, b.Addr, "marketing.newsletter"); err != nil {
		t.Errorf("the marketing principal finding the coordinator of its own group: %v", err)
	}
	// And the analytics principal the other way round.
	ana := b.SecurityAs(mech, "analytics")
	if err := fetchAs(ctx, ana, b.Addr, "compliant.analytics"); err != nil {
		t.Errorf("the analytics principal fetching compliant.analytics: %v", err)
	}
	if err := fetchAs(ctx, ana, b.Addr, "compliant.marketing"); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("the analytics principal fetching compliant.marketing: %v, want %v", err, kafka.TopicAuthorizationFailed)
	}

	// No service met a refusal: their ACL sets are enough.
	for _, proc := range []*proctest.Proc{p.sync, p.enforce, led} {
		if err := proc.Stop(30 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s did not stop cleanly: %v", proc.Name, err)
		}
		if out := proc.Output(); strings.Contains(out, "Authorization Failed") || strings.Contains(out, "not authorized") {
			t.Errorf("%s was refused something under the provisioned ACLs:\n%s", proc.Name, out)
		}
	}
}

// describeAs asks for topic's metadata as sec: the topic's error.
func describeAs(ctx context.Context, sec kafkaconn.Config, addr, topic string) error {
	conn, err := sec.Dialer("e2e-describe").DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.ReadPartitions(topic)
	return err
}

// fetchAs fetches partition 0 of topic as sec from the broker at addr (the
// leader of every partition of a one-broker cluster), with no metadata
// request first: the Fetch's own answer.
func fetchAs(ctx context.Context, sec kafkaconn.Config, addr, topic string) error {
	conn, err := dialPartition(ctx, sec, addr, topic)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	return batch.Close()
}

// produceAs writes one record to partition 0 of topic as sec.
func produceAs(ctx context.Context, sec kafkaconn.Config, addr, topic string) error {
	conn, err := dialPartition(ctx, sec, addr, topic)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.WriteMessages(kafka.Message{Key: []byte("forged"), Value: []byte("forged")})
	return err
}

func dialPartition(ctx context.Context, sec kafkaconn.Config, addr, topic string) (*kafka.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	return sec.Dialer("e2e-partition").DialPartition(ctx, "tcp", addr, kafka.Partition{Topic: topic, ID: 0, Leader: kafka.Broker{Host: host, Port: n}})
}

// coordinatorAs asks for the coordinator of group as sec.
func coordinatorAs(ctx context.Context, sec kafkaconn.Config, addr, group string) error {
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: sec.Transport("e2e-coordinator")}
	resp, err := c.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err != nil {
		return err
	}
	return resp.Error
}
