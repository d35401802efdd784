package decision_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/schemas"
)

// BenchmarkPassedEvent measures what this module spends on an event whose
// bytes are forwarded unchanged: its envelope read from the Avro binary
// (avrocodec.ReadEnvelope, which also checks the whole datum), the fields
// its bytes carry (FieldsOf, shared per schema pair) and a decision on
// every stream of the bench policy for a subject who granted everything.
// The enforcer's own work (consent lookup, produce, audit) comes on top.
func BenchmarkPassedEvent(b *testing.B) {
	pol, err := policy.Parse([]byte(benchPolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	s, _ := cat.SchemaByName("consentgate.events.Purchase")
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	at := now.Add(-time.Minute)
	str := func(v string) map[string]any { return map[string]any{"string": v} }
	data, err := s.EncodeSingle(map[string]any{
		"event_id": "evt-bench-000000002", "subject_id": "cust-0012345", "occurred_at": at,
		"order_id": "ORD-00012345", "currency": "EUR", "total_minor": int64(899),
		"items": []any{map[string]any{"sku": "SKU-3307", "name": "Vitamin D3", "category": "pharmacy/vitamins",
			"quantity": int32(1), "price_minor": int64(899), "health_category": str("supplements")}},
		"shipping_address": nil,
		"payment":          map[string]any{"method": "CARD", "card_brand": nil, "card_last4": nil},
		"email":            nil, "phone": nil, "ip_address": nil,
	})
	if err != nil {
		b.Fatal(err)
	}
	st := &consent.State{SubjectID: "cust-0012345", Purposes: map[string]consent.PurposeState{}}
	for _, p := range []string{"marketing", "analytics", "personalisation"} {
		st.Purposes[p] = consent.PurposeState{Status: consent.StatusGranted, CapturedAt: now.Add(-time.Hour), LegalBasis: consent.BasisConsent, ChangeID: "chg-" + p}
	}
	ctx := context.Background()
	b.ReportAllocs()
	var env avrocodec.Envelope
	for b.Loop() {
		if err := codec.ReadEnvelope(ctx, data, &env); err != nil {
			b.Fatal(err)
		}
		in := decision.Input{Schema: env.Schema.FullName, Fields: decision.FieldsOf(env.Writer(), env.Schema).Fields, State: st, Now: now}
		for _, stream := range pol.Streams {
			if d := decision.Decide(pol, stream, in); d.Outcome != decision.Passed || len(d.Plan) > 0 {
				b.Fatalf("stream %s: %s %s", stream.Topic, d.Outcome, d.Reason)
			}
		}
	}
}
