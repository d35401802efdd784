package redact_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/schemas"
)

// benchStream is the redact-mode stream of `make bench`
// (e2e/bench/policy.yaml).
const benchStream = `
purposes:
  - id: analytics
streams:
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.id
        action: pseudonymise
      - category: user.device.ip_address
        action: truncate_ip
      - category: user.location.precise
        action: remove
      - category: user.location.approximate
        action: keep
      - category: user.behavior.*
        action: keep
      - field: items[].sku
        action: keep
    default_treatment: remove
`

// BenchmarkRedact treats decoded events (the form the enforcer hands the
// redactor) of each kind of the bench mix: a full redaction for a subject
// without analytics consent, and the removal of excluded categories for a
// grant that excludes user.health.
func BenchmarkRedact(b *testing.B) {
	pol, err := policy.Parse([]byte(benchStream), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	stream := pol.Streams[0]
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	r, err := redact.New([]byte("consentgate-bench-pseudonymisation-key"))
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	str := func(s string) map[string]any { return map[string]any{"string": s} }
	item := func(sku string, health any) map[string]any {
		return map[string]any{"sku": sku, "name": "Vitamin D3 1000 IU", "category": "pharmacy/vitamins", "quantity": int32(2), "price_minor": int64(899), "health_category": health}
	}
	events := []struct {
		name, schema string
		value        map[string]any
	}{
		{"PageView", "consentgate.events.PageView", map[string]any{
			"event_id": "evt-1", "subject_id": "cust-0012345", "occurred_at": at, "session_id": "sess-123456",
			"page_url": "https://shop.example/shoes", "title": str("Shop"), "referrer": str("https://search.example/?q=shoes"),
			"duration_ms": int32(12000), "consent_banner_shown": true, "device_type": "MOBILE",
			"user_agent": str("Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0"), "ip_address": str("203.0.113.7"),
			"geo": map[string]any{"consentgate.events.Geo": map[string]any{"country": "FR", "region": nil, "city": str("Lyon")}},
		}},
		{"Purchase", "consentgate.events.Purchase", map[string]any{
			"event_id": "evt-2", "subject_id": "cust-0012345", "occurred_at": at, "order_id": "ORD-00012345", "currency": "EUR",
			"total_minor": int64(2697), "items": []any{item("SKU-3307", str("supplements")), item("SKU-1001", nil)},
			"shipping_address": map[string]any{"consentgate.events.Address": map[string]any{
				"recipient": "Camille Martin", "street": "12 rue des Lilas", "postal_code": "69003", "city": "Lyon", "country": "FR"}},
			"payment": map[string]any{"method": "CARD", "card_brand": str("visa"), "card_last4": str("4242")},
			"email":   str("cust-0012345@mail.example"), "phone": str("+33 6 12 34 56 78"), "ip_address": str("203.0.113.7"),
		}},
		{"EmailEngagement", "consentgate.events.EmailEngagement", map[string]any{
			"event_id": "evt-3", "subject_id": "cust-0012345", "occurred_at": at, "email": "cust-0012345@mail.example",
			"campaign_id": "cmp-2026-11", "message_id": "msg-00012345", "action": "CLICK", "link_url": str("https://shop.example/sale"),
			"user_agent": str("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1) Safari/604.1"), "ip_address": str("203.0.113.7"),
		}},
	}
	for _, ev := range events {
		data, err := codec.EncodeSingle(ev.schema, ev.value)
		if err != nil {
			b.Fatalf("encode %s: %v", ev.name, err)
		}
		rec, err := codec.Decode(context.Background(), data)
		if err != nil {
			b.Fatalf("decode %s: %v", ev.name, err)
		}
		for _, mode := range []redact.Mode{redact.ModeRedact, redact.ModeRemoveExcluded} {
			req := redact.Request{Schema: rec.Schema, Value: rec.Value, Stream: stream, Excluded: []string{"user.health"}, Mode: mode}
			b.Run(ev.name+"/"+mode.String(), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := r.Apply(req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
