package enforce

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/schemaregistry/registrytest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// The tests of this file check the invariant of the package: what the
// enforcer publishes is exactly what it judged. They look at the output
// bytes themselves, decoded with the schema they were written with, and
// search the raw bytes for values unique to the event.

const judgePolicy = `
purposes:
  - id: marketing
  - id: partners
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    excluded_categories: remove
  - topic: compliant.marketing_strict
    purposes: [marketing]
    excluded_categories: drop
  - topic: compliant.partners
    purposes: [partners]
    unannotated_fields: remove
    treatments:
      - field: event_id
        action: keep
`

// Values unique to one field each, searched for in raw output bytes.
const (
	healthValue   = "HEALTH-diabetes-type-2-unique"
	symptomValue  = "SYMPTOM-chest-pain-unique"
	campaignValue = "CAMPAIGN-unannotated-unique"
	messageValue  = "MESSAGE-unannotated-unique"
)

// emailSchemaWith returns the EmailEngagement schema with extra fields
// appended (JSON objects of the fields array).
func emailSchemaWith(t *testing.T, extra ...string) string {
	t.Helper()
	base, err := fs.ReadFile(schemas.FS, "email_engagement.v1.avsc")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(base, &m); err != nil {
		t.Fatal(err)
	}
	fields := m["fields"].([]any)
	for _, e := range extra {
		var f any
		if err := json.Unmarshal([]byte(e), &f); err != nil {
			t.Fatal(err)
		}
		fields = append(fields, f)
	}
	m["fields"] = fields
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func emailValue(eventID, subject string) map[string]any {
	return map[string]any{
		"event_id": eventID, "subject_id": subject, "occurred_at": time.UnixMilli(1_700_000_000_000).UTC(), "email": "x@example.test",
		"campaign_id": campaignValue, "message_id": messageValue, "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil,
	}
}

type judgeFixture struct {
	e     *Enforcer
	codec *avrocodec.Codec
	store *consent.Store
}

func newJudgeFixture(t *testing.T, cat *avrocodec.Catalog, reg avrocodec.Registry) *judgeFixture {
	t.Helper()
	pol, err := policy.Parse([]byte(judgePolicy), "judge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, reg)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	return &judgeFixture{e: New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red}, codec, store, pol), codec: codec, store: store}
}

func (f *judgeFixture) grant(t *testing.T, subject, purpose string, excluded ...string) {
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

// audits returns the stream decisions of the audit record of out (one
// event) by stream.
func (f *judgeFixture) audits(t *testing.T, out []kafka.Message) map[string]StreamDecision {
	t.Helper()
	as := readAudits(t, f.codec.Catalog(), out)
	if len(as) != 1 {
		t.Fatalf("%d audit records, want one", len(as))
	}
	res := map[string]StreamDecision{}
	for _, d := range as[0].Decisions {
		res[d.Stream] = d
	}
	return res
}

// writerValue decodes an output record with the schema it was written
// with, without resolving it into another version.
func writerValue(t *testing.T, codec *avrocodec.Codec, b []byte) map[string]any {
	t.Helper()
	rec, err := codec.Decode(context.Background(), b)
	if err != nil {
		t.Fatalf("decode output: %v", err)
	}
	w := rec.Writer()
	var payload []byte
	switch rec.Framing {
	case avrocodec.FramingConfluent:
		payload = b[5:]
	default:
		payload = b[10:]
	}
	native, rest, err := w.Codec().NativeFromBinary(payload)
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode output with its writer schema: %v (%d bytes left)", err, len(rest))
	}
	return native.(map[string]any)
}

func assertAbsent(t *testing.T, codec *avrocodec.Codec, out []kafka.Message, topic, field, value string) {
	t.Helper()
	for _, m := range out {
		if m.Topic != topic {
			continue
		}
		if bytes.Contains(m.Value, []byte(value)) || bytes.Contains(m.Key, []byte(value)) {
			t.Errorf("%s: the value of %s is in the published bytes", topic, field)
		}
		for _, h := range m.Headers {
			if bytes.Contains(h.Value, []byte(value)) {
				t.Errorf("%s: the value of %s is in header %s", topic, field, h.Key)
			}
		}
		v := writerValue(t, codec, m.Value)
		if got, ok := v[field]; ok && avrocodec.Unwrap(got) != nil && avrocodec.Unwrap(got) != "" {
			t.Errorf("%s: %s decodes from the published bytes (with their writer schema) as a value", topic, field)
		}
	}
}

// TestRegistryWriterNewerThanCatalogIsJudgedOnWriterFields: a producer
// registered a newer EmailEngagement that adds health_condition (user.health);
// the catalog's reader does not have it. A grant excluding user.health must
// not publish the health value on any stream.
func TestRegistryWriterNewerThanCatalogIsJudgedOnWriterFields(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New()
	url := registrytest.Start(t, reg)
	writer := emailSchemaWith(t, `{"name": "health_condition", "type": ["null", "string"], "default": null, "data_category": "user.health"}`)
	id := reg.Add("customer.events-value", writer)
	f := newJudgeFixture(t, cat, schemaregistry.New(url, nil))
	for _, pattern := range []string{"user.health", "user.health.*", "user"} {
		t.Run(pattern, func(t *testing.T) {
			subject := "s-" + pattern
			f.grant(t, subject, "marketing", pattern)
			v := emailValue("e-"+pattern, subject)
			v["health_condition"] = map[string]any{"string": healthValue}
			b, err := f.codec.EncodeConfluent(context.Background(), id, v)
			if err != nil {
				t.Fatal(err)
			}
			out, err := f.e.Process(context.Background(), []kafka.Message{{Topic: "customer.events", Key: []byte(subject), Value: b}})
			if err != nil {
				t.Fatal(err)
			}
			assertAbsent(t, f.codec, out, "compliant.marketing", "health_condition", healthValue)
			a := f.audits(t, out)
			if d := string(a["compliant.marketing"].Decision); d == "PASSED" {
				t.Errorf("compliant.marketing: decision %s for an event whose writer schema carries an excluded category", d)
			}
			if d := a["compliant.marketing_strict"].Reason; d != "excluded_category" {
				t.Errorf("compliant.marketing_strict: reason %q, want excluded_category", d)
			}
			if pattern == "user.health" {
				tf := a["compliant.marketing"].TreatedFields
				if !slices.Contains(tf, "health_condition") {
					t.Errorf("audit treated fields %v do not list health_condition", tf)
				}
			}
		})
	}
}

// TestOlderWriterAnnotationsAreJudged: the catalog's reader (v2) dropped
// health_note and no longer annotates symptom; version 1 data still carries
// both. A grant excluding user.health must not publish either value.
func TestOlderWriterAnnotationsAreJudged(t *testing.T) {
	t.Parallel()
	audit, err := fs.ReadFile(schemas.FS, "audit_record.v2.avsc")
	if err != nil {
		t.Fatal(err)
	}
	v1 := emailSchemaWith(t,
		`{"name": "health_note", "type": ["null", "string"], "default": null, "data_category": "user.health"}`,
		`{"name": "symptom", "type": ["null", "string"], "default": null, "data_category": "user.health"}`)
	v2 := emailSchemaWith(t, `{"name": "symptom", "type": ["null", "string"], "default": null}`)
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{
		"audit_record.v2.avsc":     {Data: audit},
		"email_engagement.v1.avsc": {Data: []byte(v1)},
		"email_engagement.v2.avsc": {Data: []byte(v2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := newJudgeFixture(t, cat, nil)
	f.grant(t, "s-old", "marketing", "user.health")
	old, ok := cat.Version("consentgate.events.EmailEngagement", 1)
	if !ok {
		t.Fatal("no version 1")
	}
	v := emailValue("e-old", "s-old")
	v["health_note"] = map[string]any{"string": healthValue}
	v["symptom"] = map[string]any{"string": symptomValue}
	b, err := old.EncodeSingle(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.e.Process(context.Background(), []kafka.Message{{Topic: "customer.events", Key: []byte("s-old"), Value: b}})
	if err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, f.codec, out, "compliant.marketing", "health_note", healthValue)
	assertAbsent(t, f.codec, out, "compliant.marketing", "symptom", symptomValue)
	a := f.audits(t, out)
	if d := string(a["compliant.marketing"].Decision); d != "REDACTED" {
		t.Errorf("compliant.marketing: decision %s, want REDACTED", d)
	}
	if d := string(a["compliant.marketing_strict"].Decision); d != "DROPPED" {
		t.Errorf("compliant.marketing_strict: decision %s, want DROPPED", d)
	}
}

// TestUnannotatedRemoveAppliesToEveryOutput: a stream with
// unannotated_fields: remove never publishes an unannotated value, whether
// the event passes, or is published with excluded categories removed; a
// field rule keeps event_id. The audit lists what was removed.
func TestUnannotatedRemoveAppliesToEveryOutput(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	f := newJudgeFixture(t, cat, nil)
	f.grant(t, "s-pass", "partners")
	f.grant(t, "s-excl", "partners", "user.contact")
	var batch []kafka.Message
	for i, s := range []string{"s-pass", "s-excl"} {
		b, err := f.codec.EncodeSingle("consentgate.events.EmailEngagement", emailValue("e-"+s, s))
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, kafka.Message{Topic: "customer.events", Offset: int64(i), Key: []byte(s), Value: b,
			Headers: []kafka.Header{{Key: "x-campaign", Value: []byte(campaignValue)}}})
	}
	out, err := f.e.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, f.codec, out, "compliant.partners", "campaign_id", campaignValue)
	assertAbsent(t, f.codec, out, "compliant.partners", "message_id", messageValue)
	n := 0
	for _, m := range out {
		if m.Topic != "compliant.partners" {
			continue
		}
		n++
		v := writerValue(t, f.codec, m.Value)
		subject, _ := avrocodec.StringField(v, "subject_id")
		if id, _ := avrocodec.StringField(v, "event_id"); id != "e-"+subject {
			t.Errorf("event_id %q not kept by its field rule", id)
		}
		want := "PASSED"
		if subject == "s-excl" {
			want = "REDACTED"
			if e, _ := avrocodec.StringField(v, "email"); e != "" {
				t.Error("excluded email published")
			}
		}
		if d, _ := stream.Header(m, HeaderDecision); d != want {
			t.Errorf("%s: decision header %q, want %q", subject, d, want)
		}
	}
	if n != 2 {
		t.Fatalf("compliant.partners gets %d records, want 2", n)
	}
	audited := 0
	for k, d := range streamDecisions(t, f.codec.Catalog(), out) {
		if k[1] != "compliant.partners" {
			continue
		}
		audited++
		for _, p := range []string{"campaign_id", "message_id", "occurred_at"} {
			if !slices.Contains(d.TreatedFields, p) {
				t.Errorf("audit treated fields %s do not list %s", strings.Join(d.TreatedFields, ","), p)
			}
		}
	}
	if audited != 2 {
		t.Errorf("%d audited decisions on compliant.partners, want 2", audited)
	}
}

// TestExclusionPatternsFollowTheTaxonomy: "x" and "x.*" both exclude x
// itself, and excluding a sub-category also removes a field annotated with
// a broader category that may hold it (fail closed), but not a sibling.
func TestExclusionPatternsFollowTheTaxonomy(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, redactPolicy)
	tests := []struct {
		pattern string
		absent  map[string]string // field -> a value of it that must not be published
		kept    string            // a field that keeps its value
	}{
		{"user.health.*", map[string]string{"items": "supplements"}, "email"},
		{"user.health", map[string]string{"items": "supplements"}, "email"},
		{"user.contact.address.city", map[string]string{"shipping_address.city": "Lyon", "shipping_address.street": "1 Main St", "shipping_address.recipient": "Jane Roe"}, "email"},
		{"user.contact.address.*", map[string]string{"shipping_address": "1 Main St"}, "email"},
		{"user.financial.card", map[string]string{"payment.card_last4": "4242"}, "email"},
		{"user.contact.address.country", map[string]string{"shipping_address.city": "Lyon"}, "payment"},
		{"user.contact.email", map[string]string{"email": "jane.roe@mail.example"}, "shipping_address"},
	}
	for i, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			subject := "s-x" + strings.Repeat("i", i+1)
			f.grant(t, subject, "personalisation", tt.pattern)
			out, err := f.e.Process(context.Background(), []kafka.Message{f.purchase(t, int64(i), "e-x", subject)})
			if err != nil {
				t.Fatal(err)
			}
			var pub []kafka.Message
			for _, m := range out {
				if m.Topic == "compliant.personalisation" {
					pub = append(pub, m)
				}
			}
			if len(pub) != 1 {
				t.Fatalf("compliant.personalisation gets %d records, want 1", len(pub))
			}
			for field, value := range tt.absent {
				if bytes.Contains(pub[0].Value, []byte(value)) {
					t.Errorf("excluding %s: %s (%s) is still published", tt.pattern, field, value)
				}
			}
			v := writerValue(t, f.codec, pub[0].Value)
			if avrocodec.Unwrap(v[tt.kept]) == nil {
				t.Errorf("excluding %s also removed %s", tt.pattern, tt.kept)
			}
		})
	}
}
