package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

var fullStreams = []string{"compliant.marketing", "compliant.analytics", "compliant.personalisation", "compliant.partners"}

func (p *pipeline) purchaseEvent(t *testing.T, eventID, subject string) kafka.Message {
	t.Helper()
	b, err := p.codec.EncodeSingle("consentgate.events.Purchase", map[string]any{
		"event_id": eventID, "subject_id": subject, "occurred_at": time.Date(2026, 11, 22, 9, 41, 7, 0, time.UTC),
		"order_id": "ORD-" + eventID, "currency": "EUR", "total_minor": int64(2598),
		"items": []any{
			map[string]any{"sku": "SKU-1", "name": "Trail runner", "category": "shoes", "quantity": int32(1), "price_minor": int64(1299), "health_category": nil},
			map[string]any{"sku": "SKU-2", "name": "Pregnancy test", "category": "pharmacy", "quantity": int32(1), "price_minor": int64(1299), "health_category": map[string]any{"string": "fertility"}},
		},
		"shipping_address": map[string]any{"consentgate.events.Address": map[string]any{"recipient": "Jane Roe", "street": "1 Main St", "postal_code": "69003", "city": "Lyon", "country": "FR"}},
		"payment":          map[string]any{"method": "CARD", "card_brand": map[string]any{"string": "visa"}, "card_last4": map[string]any{"string": "4242"}},
		"email":            map[string]any{"string": "jane.roe@mail.example"}, "phone": nil, "ip_address": map[string]any{"string": "203.0.113.77"},
	})
	if err != nil {
		t.Fatalf("encode purchase: %v", err)
	}
	return kafka.Message{Topic: "customer.events", Key: []byte(subject), Value: b}
}

func (p *pipeline) pageViewV1(t *testing.T, eventID, subject string) kafka.Message {
	t.Helper()
	s, ok := p.codec.Catalog().Version("consentgate.events.PageView", 1)
	if !ok {
		t.Fatal("no PageView v1")
	}
	b, err := s.EncodeSingle(map[string]any{
		"event_id": eventID, "subject_id": subject, "occurred_at": time.Date(2026, 11, 22, 9, 41, 7, 0, time.UTC),
		"session_id": "sess-1", "page_url": "https://shop.example/shoes", "page_title": map[string]any{"string": "Shoes"},
		"duration_ms": int32(1200), "user_agent": nil, "ip_address": map[string]any{"string": "198.51.100.23"}, "geo": nil,
	})
	if err != nil {
		t.Fatalf("encode page view: %v", err)
	}
	return kafka.Message{Topic: "customer.events", Key: []byte(subject), Value: b}
}

type auditRecord struct {
	eventID, subject, stream, decision, reason string
	treated                                    []string
}

// auditRecs reads consent.audit: one record per input record.
func (p *pipeline) auditRecs(t *testing.T) []fsAuditRec {
	t.Helper()
	var out []fsAuditRec
	for _, m := range p.broker.ReadAll(t, "consent.audit", 300*time.Millisecond, 10*time.Second) {
		a, err := fsDecodeAudit(p.codec, m)
		if err != nil {
			t.Fatalf("audit record does not decode: %v", err)
		}
		if string(m.Key) != a.Subject {
			t.Errorf("audit record of %s/%d keyed %q, want its subject %q", a.EventID, a.SrcOffset, m.Key, a.Subject)
		}
		out = append(out, a)
	}
	return out
}

// auditRecords returns the decisions of the audit records, one per event
// and stream.
func (p *pipeline) auditRecords(t *testing.T) []auditRecord {
	t.Helper()
	return flatAudit(p.auditRecs(t))
}

func flatAudit(recs []fsAuditRec) []auditRecord {
	var out []auditRecord
	for _, a := range recs {
		for _, d := range a.Decisions {
			out = append(out, auditRecord{eventID: a.EventID, subject: a.Subject, stream: d.Stream, decision: d.Decision, reason: d.Reason, treated: d.Treated})
		}
	}
	return out
}

// waitAudit waits until consent.audit holds want records (input records
// audited) and returns them.
func (p *pipeline) waitAudit(t *testing.T, want int, within time.Duration) []fsAuditRec {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := p.auditRecs(t)
		if len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (p *pipeline) outputs(t *testing.T, topic string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, m := range p.broker.ReadAll(t, topic, 300*time.Millisecond, 10*time.Second) {
		id, _ := stream.Header(m, "consentgate.event_id")
		rec, err := p.codec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Fatalf("%s holds an undecodable record: %v", topic, err)
		}
		if _, dup := out[id]; dup {
			t.Errorf("%s holds event %s twice", topic, id)
		}
		out[id] = rec.Value
	}
	return out
}

// TestEnforcerRoutesTreatsAndAuditsEveryEvent is issue 4's end-to-end proof
// against the broker process and a real redis-server: per-purpose routing of
// a mix of schemas, each treatment visible in the output, exclusions and
// expiry honoured, one audit record per input record listing every stream, a garbage record
// and an unknown schema dead-lettered while the pipeline keeps going, and a
// hung Redis pausing the enforcer without an event passing or being lost.
func TestEnforcerRoutesTreatsAndAuditsEveryEvent(t *testing.T) {
	p := startPipelineWith(t, "testdata/policy_full.yaml", fullStreams,
		"ENFORCER_CONSENT_CACHE_SIZE=0", "REDIS_TIMEOUT=300ms",
		"PSEUDONYMISATION_KEY=e2e-test-key-0123456789")
	now := time.Now()
	grant := func(id, subject, purpose string, excluded []string, expires time.Time) kafka.Message {
		return p.change(t, consent.Change{ChangeID: id, SubjectID: subject, Purpose: purpose, Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09",
			CapturedAt: now.Add(-time.Hour), ExcludedCategories: excluded, ExpiresAt: expires})
	}
	p.produce(t,
		grant("a-m", "alice", "marketing", nil, time.Time{}),
		grant("a-a", "alice", "analytics", nil, time.Time{}),
		grant("a-p", "alice", "personalisation", []string{"user.health"}, time.Time{}),
		grant("a-x", "alice", "partners", []string{"user.health"}, time.Time{}),
		grant("c-m", "carol", "marketing", nil, now.Add(-time.Minute)), // expired
		grant("d-m", "dave", "marketing", nil, time.Time{}),
		p.change(t, consent.Change{ChangeID: "d-w", SubjectID: "dave", Purpose: "marketing", Action: consent.ActionWithdraw,
			Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now.Add(-time.Minute)}),
	)
	p.waitConsent(t, "alice", "partners", consent.StatusGranted)
	p.waitConsent(t, "carol", "marketing", consent.StatusGranted)
	p.waitConsent(t, "dave", "marketing", consent.StatusWithdrawn)

	unknownSchema := append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, 0x02, 0x41)
	p.produce(t,
		p.purchaseEvent(t, "e-alice-buy", "alice"),
		p.pageViewV1(t, "e-alice-view", "alice"),
		p.email(t, "e-bob-mail", "bob"),
		kafka.Message{Topic: "customer.events", Key: []byte("x"), Value: []byte("definitely not avro")},
		kafka.Message{Topic: "customer.events", Key: []byte("y"), Value: unknownSchema},
		p.purchaseEvent(t, "e-carol-buy", "carol"),
		p.email(t, "e-dave-mail", "dave"),
	)
	const decodable, undecodable, streams = 5, 2, 4
	recs := p.waitAudit(t, decodable+undecodable, 60*time.Second)
	if len(recs) != decodable+undecodable {
		t.Fatalf("%d audit records, want %d (one per input record)", len(recs), decodable+undecodable)
	}
	dead := 0
	for _, a := range recs {
		if a.Outcome == fsDeadLettered {
			dead++
			if a.DLQReason != "undecodable" || a.EventID != "" || a.Subject != "" || len(a.Decisions) != 0 {
				t.Errorf("audit record of a dead-lettered input: %+v", a)
			}
		}
	}
	if dead != undecodable {
		t.Errorf("%d DEAD_LETTERED audit records, want %d", dead, undecodable)
	}
	audit := flatAudit(recs)
	if len(audit) != decodable*streams {
		t.Fatalf("%d audited decisions, want %d (one per decodable event and stream)", len(audit), decodable*streams)
	}
	got := map[string]auditRecord{}
	for _, a := range audit {
		got[a.eventID+" "+a.stream] = a
	}
	want := map[string]string{
		"e-alice-buy compliant.marketing":        "PASSED granted",
		"e-alice-buy compliant.analytics":        "PASSED granted",
		"e-alice-buy compliant.personalisation":  "REDACTED granted_with_exclusions",
		"e-alice-buy compliant.partners":         "DROPPED excluded_category",
		"e-alice-view compliant.marketing":       "DROPPED schema_not_accepted",
		"e-alice-view compliant.personalisation": "PASSED granted",
		"e-alice-view compliant.partners":        "PASSED granted",
		"e-bob-mail compliant.marketing":         "DROPPED unknown_subject",
		"e-bob-mail compliant.analytics":         "REDACTED unknown_subject",
		"e-carol-buy compliant.marketing":        "DROPPED expired",
		"e-carol-buy compliant.analytics":        "REDACTED never_asked",
		"e-dave-mail compliant.marketing":        "DROPPED withdrawn",
		"e-dave-mail compliant.analytics":        "REDACTED never_asked",
	}
	for k, w := range want {
		a, ok := got[k]
		if !ok {
			t.Errorf("no audit record for %s", k)
			continue
		}
		if a.decision+" "+a.reason != w {
			t.Errorf("%s: %s %s, want %s", k, a.decision, a.reason, w)
		}
	}
	if tf := got["e-alice-buy compliant.personalisation"].treated; strings.Join(tf, ",") != "items[].health_category" {
		t.Errorf("exclusion treated %v, want [items[].health_category]", tf)
	}

	// Marketing: exactly alice's purchase.
	mk := p.outputs(t, "compliant.marketing")
	if len(mk) != 1 || mk["e-alice-buy"] == nil {
		t.Errorf("compliant.marketing holds %v, want only e-alice-buy", keys(mk))
	}
	// Analytics: alice's two events as they came, redacted copies for the
	// others (none of whom granted analytics).
	an := p.outputs(t, "compliant.analytics")
	if len(an) != 5 {
		t.Errorf("compliant.analytics holds %v, want all 5 events", keys(an))
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, id := range []string{"e-bob-mail", "e-carol-buy"} {
		v := an[id]
		if v == nil {
			continue
		}
		s := func(f string) string { x, _ := avrocodec.StringField(v, f); return x }
		if !hex64.MatchString(s("subject_id")) {
			t.Errorf("%s: subject_id %q not pseudonymised", id, s("subject_id"))
		}
		if ip := s("ip_address"); ip != "203.0.113.0" && ip != "198.51.100.0" {
			t.Errorf("%s: ip_address %q not truncated to /24", id, ip)
		}
		if e := s("email"); !strings.HasPrefix(e, "b*") && !strings.HasPrefix(e, "j*") || !strings.HasSuffix(e, "@mail.example") {
			t.Errorf("%s: email %q not masked", id, e)
		}
		if at, _ := avrocodec.Field(v, "occurred_at"); at.(time.Time).Minute() != 0 || at.(time.Time).Second() != 0 {
			t.Errorf("%s: occurred_at %v not generalised to the hour", id, at)
		}
	}
	if v := an["e-carol-buy"]; v != nil {
		if addr, _ := avrocodec.Field(v, "shipping_address"); avrocodec.Unwrap(addr) != nil {
			t.Errorf("shipping address (default remove) published: %v", addr)
		}
		if o, _ := avrocodec.StringField(v, "order_id"); o != "ORD-e-carol-buy" {
			t.Errorf("order_id (user.behavior.*: keep) is %q", o)
		}
	}
	if v := an["e-alice-buy"]; v != nil {
		if s, _ := avrocodec.StringField(v, "subject_id"); s != "alice" {
			t.Errorf("a granted event was treated: subject %q", s)
		}
	}
	// Personalisation: alice's purchase without its health category.
	pe := p.outputs(t, "compliant.personalisation")
	if v := pe["e-alice-buy"]; v == nil {
		t.Errorf("compliant.personalisation lacks e-alice-buy: %v", keys(pe))
	} else {
		items, _ := avrocodec.Field(v, "items")
		for _, it := range items.([]any) {
			if h := avrocodec.Unwrap(it.(map[string]any)["health_category"]); h != nil {
				t.Errorf("excluded health category published: %v", h)
			}
		}
	}
	// Dead letters: the garbage and the unknown schema, bytes untouched.
	dlq := p.broker.ReadAll(t, "customer.events.dlq", 300*time.Millisecond, 10*time.Second)
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for _, d := range dlq {
		errText, _ := stream.Header(d, "consentgate.dlq.error")
		if string(d.Key) == "y" && (string(d.Value) != string(unknownSchema) || !strings.Contains(errText, "fingerprint")) {
			t.Errorf("unknown-schema dead letter: error %q, value changed %v", errText, string(d.Value) != string(unknownSchema))
		}
	}

	// A hung Redis: the enforcer pauses; nothing passes, nothing is audited,
	// nothing is lost; once Redis answers again the event is decided.
	p.redis.Pause()
	p.produce(t, p.email(t, "e-during-outage", "alice"))
	time.Sleep(4 * time.Second)
	if n := len(p.auditRecs(t)); n != decodable+undecodable {
		t.Errorf("%d audit records while Redis was hung, want still %d", n, decodable+undecodable)
	}
	if _, ok := p.outputs(t, "compliant.marketing")["e-during-outage"]; ok {
		t.Error("an event passed while consent could not be read")
	}
	p.redis.Resume()
	after := p.waitAudit(t, decodable+undecodable+1, 60*time.Second)
	if len(after) != decodable+undecodable+1 {
		t.Fatalf("after Redis came back: %d audit records, want %d", len(after), decodable+undecodable+1)
	}
	if _, ok := p.outputs(t, "compliant.marketing")["e-during-outage"]; !ok {
		t.Error("the event held during the outage never reached compliant.marketing")
	}
	if !strings.Contains(p.enforce.Output(), "fail closed") {
		t.Error("the enforcer did not report pausing fail-closed")
	}
	for _, secret := range []string{"alice", "jane.roe", "203.0.113.77", "Main St"} {
		for _, proc := range []string{p.enforce.Output(), p.sync.Output()} {
			if strings.Contains(proc, secret) {
				t.Errorf("a service logged personal data %q", secret)
			}
		}
	}
}

func keys(m map[string]map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
