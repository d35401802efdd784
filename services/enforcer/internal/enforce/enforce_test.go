package enforce

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

const testPolicy = `
purposes:
  - id: marketing
  - id: analytics
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement]
  - topic: compliant.analytics
    purposes: [analytics]
`

type fixture struct {
	e     *Enforcer
	codec *avrocodec.Codec
	store *consent.Store
	redis *redistest.Server
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, testPolicy) }

func newFixtureWith(t *testing.T, policyText string) *fixture {
	t.Helper()
	pol, err := policy.Parse([]byte(policyText), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{e: New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red}, codec, store, pol), codec: codec, store: store, redis: srv}
}

func (f *fixture) grant(t *testing.T, subject, purpose string, excluded ...string) {
	t.Helper()
	_, err := f.store.Apply(context.Background(), consent.Change{
		ChangeID: "c-" + subject + "-" + purpose, SubjectID: subject, Purpose: purpose, Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: time.Now().Add(-time.Minute),
		ExcludedCategories: excluded,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) email(t *testing.T, offset int64, eventID, subject string) kafka.Message {
	t.Helper()
	b, err := f.codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
		"event_id": eventID, "subject_id": subject, "occurred_at": time.Now(), "email": "x@example.test",
		"campaign_id": "c", "message_id": "m", "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: "customer.events", Partition: 1, Offset: offset, Key: []byte(subject), Value: b,
		Headers: []kafka.Header{{Key: "trace", Value: []byte("abc")}}}
}

func byTopic(msgs []kafka.Message) map[string][]kafka.Message {
	m := map[string][]kafka.Message{}
	for _, x := range msgs {
		m[x.Topic] = append(m[x.Topic], x)
	}
	return m
}

func TestProcessDecidesEveryStreamAndAuditsEachEvent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.grant(t, "s-granted", "marketing")
	batch := []kafka.Message{
		f.email(t, 10, "e1", "s-granted"),
		f.email(t, 11, "e2", "s-unknown"),
		{Topic: "customer.events", Partition: 1, Offset: 12, Key: []byte("k"), Value: []byte{0xC3, 0x01, 1, 2}, Headers: []kafka.Header{{Key: "h", Value: []byte("v")}}},
	}
	out, err := f.e.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	got := byTopic(out)
	if n := len(got["compliant.marketing"]); n != 1 {
		t.Fatalf("compliant.marketing gets %d records, want 1", n)
	}
	o := got["compliant.marketing"][0]
	if string(o.Value) != string(batch[0].Value) || string(o.Key) != "s-granted" {
		t.Errorf("passed event changed on the way out")
	}
	for k, want := range map[string]string{"trace": "abc", HeaderEventID: "e1", HeaderSourceTopic: "customer.events", HeaderSourcePart: "1", HeaderSourceOffset: "10", HeaderDecision: "PASSED"} {
		if v, _ := stream.Header(o, k); v != want {
			t.Errorf("output header %s = %q, want %q", k, v, want)
		}
	}
	if n := len(got["compliant.analytics"]); n != 0 {
		t.Errorf("compliant.analytics gets %d records without consent", n)
	}
	audits := got["consent.audit"]
	if n := len(audits); n != 3 {
		t.Fatalf("%d audit records, want 3 (one per input event, the undecodable one included)", n)
	}
	decisions := map[string]string{}
	for i, a := range readAudits(t, f.codec.Catalog(), out) {
		m := audits[i]
		if a.Outcome == AuditDeadLettered {
			continue
		}
		if string(m.Key) != a.SubjectID {
			t.Errorf("audit key %q is not the subject", m.Key)
		}
		if a.PolicyVersion == "" || a.EventSchema != "consentgate.events.EmailEngagement" || a.SourceTopic != "customer.events" || a.SourcePartition != 1 {
			t.Errorf("audit record lacks policy version, schema or source: %+v", a)
		}
		if len(a.Decisions) != 2 || a.Decisions[0].Stream != "compliant.marketing" || a.Decisions[1].Stream != "compliant.analytics" {
			t.Errorf("audit of %s: decisions %+v, want one per stream in policy order", a.EventID, a.Decisions)
		}
		if v, _ := stream.Header(m, HeaderEventID); v != a.EventID || len(m.Headers) != 1 {
			t.Errorf("audit headers %v, want only the event id %s", m.Headers, a.EventID)
		}
		for _, d := range a.Decisions {
			decisions[a.EventID+"/"+d.Stream] = string(d.Decision) + ":" + d.Reason
		}
	}
	want := map[string]string{
		"e1/compliant.marketing": "PASSED:granted",
		"e1/compliant.analytics": "DROPPED:never_asked",
		"e2/compliant.marketing": "DROPPED:unknown_subject",
		"e2/compliant.analytics": "DROPPED:unknown_subject",
	}
	for k, v := range want {
		if decisions[k] != v {
			t.Errorf("decision %s = %q, want %q", k, decisions[k], v)
		}
	}
	// The undecodable input has its DEAD_LETTERED audit record: no event
	// id, subject, schema, key or decisions, its coordinates and reason.
	dl := readAudits(t, f.codec.Catalog(), out)[2]
	if dl.Outcome != AuditDeadLettered || dl.DeadLetterReason != DeadLetterUndecodable || dl.EventID != "" || dl.SubjectID != "" ||
		dl.EventSchema != "" || len(dl.Decisions) != 0 || dl.SourceTopic != "customer.events" || dl.SourcePartition != 1 || dl.SourceOffset != 12 ||
		dl.PolicyVersion == "" || dl.ProcessedAt.IsZero() {
		t.Errorf("audit of the undecodable input: %+v", dl)
	}
	if m := audits[2]; m.Key != nil || len(m.Headers) != 0 {
		t.Errorf("audit of the undecodable input keyed %q with headers %v, want neither", m.Key, m.Headers)
	}
	dlq := got["customer.events.dlq"]
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	if string(dlq[0].Value) != string(batch[2].Value) || string(dlq[0].Key) != "k" {
		t.Error("dead letter does not keep the original key and value")
	}
	if v, _ := stream.Header(dlq[0], "h"); v != "v" {
		t.Error("dead letter lost the original headers")
	}
	if v, _ := stream.Header(dlq[0], HeaderDLQReason); v != "undecodable" {
		t.Errorf("dead letter reason %q", v)
	}
	if v, _ := stream.Header(dlq[0], HeaderDLQError); !strings.Contains(v, "fingerprint") && !strings.Contains(v, "truncated") {
		t.Errorf("dead letter error %q does not say why", v)
	}
}

// TestProcessAuditsEveryInputOffset: an event without a subject or an event
// id gets a DEAD_LETTERED audit record beside its dead letter, with what is
// known of it (event id, subject, schema) and its coordinates; keyed by the
// subject when there is one, with the event id header when there is one.
// A decided event's record names, per stream, the consent change of each
// purpose checked.
func TestProcessAuditsEveryInputOffset(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.grant(t, "s1", "marketing")
	batch := []kafka.Message{f.email(t, 20, "e-nosub", ""), f.email(t, 21, "", "s-noid"), f.email(t, 22, "e1", "s1")}
	out, err := f.e.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	got := byTopic(out)
	if n := len(got["customer.events.dlq"]); n != 2 {
		t.Fatalf("%d dead letters, want 2", n)
	}
	audits := got["consent.audit"]
	as := readAudits(t, f.codec.Catalog(), out)
	if len(as) != 3 {
		t.Fatalf("%d audit records, want one per input", len(as))
	}
	for i, a := range as {
		if a.SourceOffset != batch[i].Offset || a.SourceTopic != batch[i].Topic || a.SourcePartition != int32(batch[i].Partition) {
			t.Errorf("audit record %d names %s/%d/%d, want the input's coordinates", i, a.SourceTopic, a.SourcePartition, a.SourceOffset)
		}
	}
	if a, m := as[0], audits[0]; a.Outcome != AuditDeadLettered || a.DeadLetterReason != DeadLetterMissingSubjectID || a.EventID != "e-nosub" ||
		a.SubjectID != "" || a.EventSchema != "consentgate.events.EmailEngagement" || len(a.Decisions) != 0 || m.Key != nil {
		t.Errorf("audit of the event without subject: %+v key %q", a, m.Key)
	} else if v, _ := stream.Header(m, HeaderEventID); v != "e-nosub" || len(m.Headers) != 1 {
		t.Errorf("audit of the event without subject: headers %v", m.Headers)
	}
	if a, m := as[1], audits[1]; a.Outcome != AuditDeadLettered || a.DeadLetterReason != DeadLetterMissingEventID || a.EventID != "" ||
		a.SubjectID != "s-noid" || len(a.Decisions) != 0 || string(m.Key) != "s-noid" || len(m.Headers) != 0 {
		t.Errorf("audit of the event without event id: %+v key %q headers %v", a, m.Key, m.Headers)
	}
	a := as[2]
	if a.Outcome != AuditDecided || a.DeadLetterReason != "" || len(a.Decisions) != 2 {
		t.Fatalf("audit of the decided event: %+v", a)
	}
	mk := a.Decisions[0]
	if mk.Stream != "compliant.marketing" || mk.Decision != "PASSED" || mk.DecidingPurpose != "marketing" || !slices.Equal(mk.Purposes, []string{"marketing"}) ||
		len(mk.Consents) != 1 || mk.Consents[0].Purpose != "marketing" || mk.Consents[0].ChangeID != "c-s1-marketing" || mk.Consents[0].CapturedAt.IsZero() {
		t.Errorf("marketing decision %+v", mk)
	}
	if an := a.Decisions[1]; an.Decision != "DROPPED" || an.Reason != "never_asked" || len(an.Consents) != 1 || an.Consents[0].ChangeID != "" {
		t.Errorf("analytics decision %+v", an)
	}
	if n := f.e.DeadLettered.Load(); n != 2 {
		t.Errorf("DeadLettered = %d, want 2", n)
	}
	if p, d := f.e.Passed.Load(), f.e.Dropped.Load(); p != 1 || d != 1 {
		t.Errorf("Passed %d, Dropped %d, want per stream decision 1 and 1", p, d)
	}
}

// TestProcessFailsClosedWhenRedisIsDown: no output, no audit and an error
// (so the runner retries and commits nothing) while consent cannot be read.
func TestProcessFailsClosedWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.grant(t, "s1", "marketing")
	// The undecodable input's dead letter and audit record are not written
	// alone either: the batch is all or nothing.
	batch := []kafka.Message{f.email(t, 1, "e1", "s1"), {Topic: "customer.events", Partition: 1, Offset: 2, Value: []byte{0}}}
	f.redis.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := f.e.Process(ctx, batch)
	if err == nil {
		t.Fatal("Process succeeded with Redis down")
	}
	if len(out) != 0 {
		t.Fatalf("Process returned %d records with Redis down", len(out))
	}
	if strings.Contains(err.Error(), "s1") {
		t.Errorf("error names the subject: %v", err)
	}
}

const redactPolicy = `
purposes:
  - id: analytics
  - id: personalisation
streams:
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.id
        action: pseudonymise
      - category: user.device.ip_address
        action: truncate_ip
      - category: user.behavior.*
        action: keep
    default_treatment: remove
  - topic: compliant.personalisation
    purposes: [personalisation]
    excluded_categories: remove
`

func (f *fixture) purchase(t *testing.T, offset int64, eventID, subject string) kafka.Message {
	t.Helper()
	b, err := f.codec.EncodeSingle("consentgate.events.Purchase", map[string]any{
		"event_id": eventID, "subject_id": subject, "occurred_at": time.Now(), "order_id": "ORD-1", "currency": "EUR", "total_minor": int64(1299),
		"items": []any{map[string]any{"sku": "SKU-1", "name": "Vitamin D", "category": "pharmacy", "quantity": int32(1), "price_minor": int64(1299),
			"health_category": map[string]any{"string": "supplements"}}},
		"shipping_address": map[string]any{"consentgate.events.Address": map[string]any{"recipient": "Jane Roe", "street": "1 Main St", "postal_code": "12345", "city": "Lyon", "country": "FR"}},
		"payment":          map[string]any{"method": "CARD", "card_brand": map[string]any{"string": "visa"}, "card_last4": map[string]any{"string": "4242"}},
		"email":            map[string]any{"string": "jane.roe@mail.example"}, "phone": nil, "ip_address": map[string]any{"string": "203.0.113.77"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: "customer.events", Partition: 0, Offset: offset, Key: []byte(subject), Value: b,
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-abc-def-01")}, {Key: "x-customer-email", Value: []byte("jane.roe@mail.example")}}}
}

// TestProcessRedactsAndRemovesExcluded: without consent the redact stream
// gets a treated copy; with a grant that excludes health data the
// personalisation stream gets the event without its health fields. Audit
// records list the treated fields.
func TestProcessRedactsAndRemovesExcluded(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, redactPolicy)
	f.grant(t, "s-excl", "personalisation", "user.health")
	batch := []kafka.Message{f.purchase(t, 1, "e-anon", "s-none"), f.purchase(t, 2, "e-excl", "s-excl")}
	out, err := f.e.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	got := byTopic(out)
	decode := func(m kafka.Message) map[string]any {
		rec, err := f.codec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Value
	}
	str := func(v map[string]any, path string) string { s, _ := avrocodec.StringField(v, path); return s }

	an := got["compliant.analytics"]
	if len(an) != 2 {
		t.Fatalf("compliant.analytics gets %d records, want 2 redacted copies", len(an))
	}
	for _, m := range an {
		v := decode(m)
		if str(v, "subject_id") == "s-none" || str(v, "subject_id") == "s-excl" || len(str(v, "subject_id")) != 64 {
			t.Errorf("subject_id not pseudonymised: %q", str(v, "subject_id"))
		}
		if string(m.Key) != str(v, "subject_id") {
			t.Errorf("redacted record keyed by %q, want the pseudonym", m.Key)
		}
		if ip := str(v, "ip_address"); ip != "203.0.113.0" {
			t.Errorf("ip_address %q, want truncated to /24", ip)
		}
		if e, ok := avrocodec.Field(v, "email"); ok && avrocodec.Unwrap(e) != nil {
			t.Errorf("email kept on a redacted copy: %v", e)
		}
		if str(v, "order_id") != "ORD-1" {
			t.Errorf("order_id (user.behavior.purchase, keep) changed to %q", str(v, "order_id"))
		}
		for _, h := range m.Headers {
			if h.Key == "x-customer-email" {
				t.Error("a redacted copy kept an input header that may carry personal data")
			}
		}
		if d, _ := stream.Header(m, HeaderDecision); d != "REDACTED" {
			t.Errorf("decision header %q", d)
		}
	}
	pe := got["compliant.personalisation"]
	if len(pe) != 1 {
		t.Fatalf("compliant.personalisation gets %d records, want the granted one", len(pe))
	}
	v := decode(pe[0])
	if str(v, "subject_id") != "s-excl" || str(v, "email") != "jane.roe@mail.example" {
		t.Errorf("granted fields changed: %v", v)
	}
	items, _ := avrocodec.Field(v, "items")
	for _, it := range items.([]any) {
		if h := avrocodec.Unwrap(it.(map[string]any)["health_category"]); h != nil {
			t.Errorf("excluded health category published: %v", h)
		}
	}

	treated := map[string][]string{}
	for k, d := range streamDecisions(t, f.codec.Catalog(), out) {
		treated[k[0]+"/"+k[1]+"/"+string(d.Decision)] = d.TreatedFields
	}
	if tf := treated["e-excl/compliant.personalisation/REDACTED"]; len(tf) != 1 || tf[0] != "items[].health_category" {
		t.Errorf("audit of the exclusion lists %v, want [items[].health_category]", tf)
	}
	if tf := treated["e-anon/compliant.analytics/REDACTED"]; len(tf) < 3 {
		t.Errorf("audit of the redacted copy lists %v", tf)
	}
	if _, ok := treated["e-anon/compliant.personalisation/DROPPED"]; !ok {
		t.Errorf("missing drop decision for the ungranted personalisation stream: %v", treated)
	}
}
