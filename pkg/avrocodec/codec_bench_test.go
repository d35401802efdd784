package avrocodec_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/schemas"
)

// The benchmarks of this file measure the codec on the enforcer's hot path
// with the event mix of `make bench` (e2e/bench): framing + decode of each
// event kind, the re-encoding of a redacted copy (EncodeLike), and the
// encoding of an audit record (EncodeSingle). Run them with
//
//	go test -run '^$' -bench . -benchmem ./avrocodec

// benchEvents returns one encoded event (single-object framing) of each kind
// of the mix, by name.
func benchEvents(b *testing.B) (*avrocodec.Codec, map[string][]byte) {
	b.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		b.Fatalf("load catalog: %v", err)
	}
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	str := func(s string) map[string]any { return map[string]any{"string": s} }
	pv := func() map[string]any {
		return map[string]any{
			"event_id": "evt-bench-000000001", "subject_id": "cust-0012345", "occurred_at": at,
			"session_id": "sess-123456", "page_url": "https://shop.example/shoes/trail-runner-3", "duration_ms": int32(12000),
			"user_agent": str("Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0"), "ip_address": str("203.0.113.7"),
			"geo": map[string]any{"consentgate.events.Geo": map[string]any{"country": "FR", "region": nil, "city": str("Lyon")}},
		}
	}
	v1 := pv()
	v1["page_title"] = str("Shop")
	v2 := pv()
	v2["title"], v2["referrer"], v2["consent_banner_shown"], v2["device_type"] = str("Shop"), str("https://search.example/?q=shoes"), true, "MOBILE"
	item := func(sku string, health any) map[string]any {
		return map[string]any{"sku": sku, "name": "Vitamin D3 1000 IU", "category": "pharmacy/vitamins", "quantity": int32(2), "price_minor": int64(899), "health_category": health}
	}
	purchase := map[string]any{
		"event_id": "evt-bench-000000002", "subject_id": "cust-0012345", "occurred_at": at,
		"order_id": "ORD-00012345", "currency": "EUR", "total_minor": int64(2697),
		"items": []any{item("SKU-3307", str("supplements")), item("SKU-1001", nil)},
		"shipping_address": map[string]any{"consentgate.events.Address": map[string]any{
			"recipient": "Camille Martin", "street": "12 rue des Lilas", "postal_code": "69003", "city": "Lyon", "country": "FR"}},
		"payment": map[string]any{"method": "CARD", "card_brand": str("visa"), "card_last4": str("4242")},
		"email":   str("cust-0012345@mail.example"), "phone": str("+33 6 12 34 56 78"), "ip_address": str("203.0.113.7"),
	}
	email := map[string]any{
		"event_id": "evt-bench-000000003", "subject_id": "cust-0012345", "occurred_at": at,
		"email": "cust-0012345@mail.example", "campaign_id": "cmp-2026-11", "message_id": "msg-00012345", "action": "CLICK",
		"link_url": str("https://shop.example/sale"), "user_agent": str("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1) Safari/604.1"), "ip_address": str("203.0.113.7"),
	}
	out := map[string][]byte{}
	for name, e := range map[string]struct {
		schema  string
		version int
		value   map[string]any
	}{
		"PageView.v1":     {"consentgate.events.PageView", 1, v1},
		"PageView.v2":     {"consentgate.events.PageView", 2, v2},
		"Purchase":        {"consentgate.events.Purchase", 1, purchase},
		"EmailEngagement": {"consentgate.events.EmailEngagement", 1, email},
	} {
		s, ok := cat.Version(e.schema, e.version)
		if !ok {
			b.Fatalf("no schema %s v%d", e.schema, e.version)
		}
		data, err := s.EncodeSingle(e.value)
		if err != nil {
			b.Fatalf("encode %s: %v", name, err)
		}
		out[name] = data
	}
	return avrocodec.New(cat, nil), out
}

// BenchmarkFramingDecode decodes one event of each kind: framing, writer
// schema lookup by fingerprint, binary decode and (PageView v1) resolution
// into the latest version.
func BenchmarkFramingDecode(b *testing.B) {
	codec, events := benchEvents(b)
	ctx := context.Background()
	for _, name := range []string{"PageView.v1", "PageView.v2", "Purchase", "EmailEngagement"} {
		data := events[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := codec.Decode(ctx, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnvelope reads the envelope of one event of each kind (framing,
// writer schema lookup, event_id and subject_id, and the check that the
// whole datum decodes and resolves) without decoding it: what the enforcer
// needs for an event whose bytes are forwarded. Compare with
// BenchmarkFramingDecode. "new" allocates the Envelope (Codec.Envelope),
// "into" fills the caller's (Codec.ReadEnvelope).
func BenchmarkEnvelope(b *testing.B) {
	codec, events := benchEvents(b)
	ctx := context.Background()
	for _, name := range []string{"PageView.v1", "PageView.v2", "Purchase", "EmailEngagement"} {
		data := events[name]
		b.Run(name+"/new", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := codec.Envelope(ctx, data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/into", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var env avrocodec.Envelope
			for b.Loop() {
				if err := codec.ReadEnvelope(ctx, data, &env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeLike re-encodes a decoded event in its own framing, as the
// enforcer does for every redacted copy.
func BenchmarkEncodeLike(b *testing.B) {
	codec, events := benchEvents(b)
	ctx := context.Background()
	for _, name := range []string{"PageView.v2", "Purchase"} {
		rec, err := codec.Decode(ctx, events[name])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.EncodeLike(ctx, rec, rec.Value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeAudit encodes one audit record (version 2, three stream
// decisions), as the enforcer's generic path does for every event.
func BenchmarkEncodeAudit(b *testing.B) {
	codec, _ := benchEvents(b)
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	decision := func(stream, d, reason string, treated ...any) any {
		return map[string]any{"stream": stream, "purposes": []any{"p"}, "decision": d, "reason": reason, "deciding_purpose": "p",
			"treated_fields": treated, "consents": []any{map[string]any{"purpose": "p",
				"consent_change_id": map[string]any{"string": "chg-0001"}, "consent_captured_at": map[string]any{"long.timestamp-millis": at}}}}
	}
	v := map[string]any{
		"event_id": map[string]any{"string": "evt-bench-000000002"}, "subject_id": map[string]any{"string": "cust-0012345"},
		"outcome": "DECIDED", "dead_letter_reason": nil, "event_schema": map[string]any{"string": "consentgate.events.Purchase"},
		"policy_version": "sha256:0123456789abcdef", "source_topic": "customer.events", "source_partition": int32(3),
		"source_offset": int64(123456), "processed_at": at.Add(48 * time.Hour),
		"decisions": []any{
			decision("compliant.marketing", "DROPPED", "schema_not_accepted"),
			decision("compliant.analytics", "REDACTED", "denied", "email", "phone", "shipping_address", "subject_id"),
			decision("compliant.personalisation", "PASSED", "granted"),
		},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.EncodeSingle("consentgate.audit.AuditRecord", v); err != nil {
			b.Fatal(err)
		}
	}
}
