package enforce

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/schemas"
)

// Found by the reference model (TestReferenceModel, an encrypt stream with
// "field: items, action: encrypt" and excluded_categories: drop): an
// excluded category inside an encrypted field must still count. The
// policy README: "A field of a category the customer's grant excludes is
// removed, never encrypted"; excluded_categories: drop drops an event "a
// grant excluding a category present in the event"; remove publishes it
// REDACTED granted_with_exclusions with the field removed.
const encExclPolicy = `
purposes:
  - id: marketing
streams:
  - topic: compliant.drop
    purposes: [marketing]
    excluded_categories: drop
    treatments:
      - field: items
        action: encrypt
  - topic: compliant.remove
    purposes: [marketing]
    excluded_categories: remove
    treatments:
      - field: items
        action: encrypt
        encryption: deterministic
`

func TestRefModelEncryptExcludedInsideEncryptedField(t *testing.T) {
	ctx := context.Background()
	pol, err := policy.Parse([]byte(encExclPolicy), "p.yaml")
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
	keys := &memKeys{keys: map[string]*shred.DataKey{}}
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: keys}, codec, store, pol)
	if _, err := store.Apply(ctx, consent.Change{ChangeID: "g1", SubjectID: "s1", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, ExcludedCategories: []string{"user.health"}, Source: "test", NoticeVersion: "1",
		CapturedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const health = "HEALTH-secret-category~"
	b, err := codec.EncodeSingle("consentgate.events.Purchase", map[string]any{
		"event_id": "e1", "subject_id": "s1", "occurred_at": time.Now(), "order_id": "o1", "currency": "EUR", "total_minor": int64(100),
		"items": []any{map[string]any{"sku": "sku-1", "name": "n", "category": "c", "price_minor": int64(100), "quantity": int32(1),
			"health_category": map[string]any{"string": health}}},
		"shipping_address": nil, "payment": map[string]any{"method": "CARD", "card_brand": nil, "card_last4": nil},
		"email": nil, "phone": nil, "ip_address": nil})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Process(ctx, []kafka.Message{{Topic: "customer.events", Key: []byte("s1"), Value: b}})
	if err != nil {
		t.Fatal(err)
	}
	ds := streamDecisions(t, cat, out)
	if d := ds[[2]string{"e1", "compliant.drop"}]; d.Decision != "DROPPED" || d.Reason != "excluded_category" {
		t.Errorf("compliant.drop: %s %s, want DROPPED excluded_category (user.health is excluded and present in items[].health_category)", d.Decision, d.Reason)
	}
	if d := ds[[2]string{"e1", "compliant.remove"}]; d.Decision != "REDACTED" || d.Reason != "granted_with_exclusions" {
		t.Errorf("compliant.remove: %s %s, want REDACTED granted_with_exclusions", d.Decision, d.Reason)
	}
	for _, m := range out {
		switch m.Topic {
		case "compliant.drop":
			t.Errorf("published on compliant.drop")
		case "compliant.remove":
			if strings.Contains(string(m.Value), health) {
				t.Errorf("the excluded value is on compliant.remove in clear")
			}
			rec, err := codec.Decode(ctx, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			items, _ := rec.Value["items"].([]any)
			for _, it := range items {
				if hc := it.(map[string]any)["health_category"]; hc != nil {
					t.Errorf("compliant.remove: items[].health_category = %v, want removed (an excluded category is removed, never encrypted)", hc)
				}
			}
		}
	}
}
