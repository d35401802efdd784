package enforce

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/telemetry"
	"github.com/consentgate/consentgate/schemas"
)

// baggagePolicy gives every kind of record the enforcer writes: a passed
// output (personalisation, granted), redacted copies (analytics without
// consent; marketing under a grant that excludes health data), drops, audit
// records, and dead letters for what cannot be decoded.
const baggagePolicy = `
purposes:
  - id: analytics
  - id: personalisation
  - id: marketing
streams:
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.id
        action: pseudonymise
    default_treatment: remove
  - topic: compliant.personalisation
    purposes: [personalisation]
  - topic: compliant.marketing
    purposes: [marketing]
    excluded_categories: remove
`

// Personal data that producers commonly put into W3C baggage and other
// headers: none of it may appear on a header the enforcer writes.
const (
	baggageUserID = "jane-roe-4711"
	baggageEmail  = "jane.roe@mail.example"
	// A sampled parent, so that the enforcer traces the record and injects
	// its own span context into what it writes.
	sampledParent   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	unsampledParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
)

// TestEnforcerWritesNoBaggage sends records carrying W3C baggage (and other
// arbitrary headers) through the real enforcer, traced with the services'
// real telemetry set-up, and checks every header of every record it writes:
// passed outputs and dead letters forward the input's headers (README,
// "Topics") and add only consentgate.* headers and trace context; redacted
// copies and audit records carry only consentgate.* headers and trace
// context. No record gets a baggage header the input did not already have
// in the place where it is documented to be forwarded.
func TestEnforcerWritesNoBaggage(t *testing.T) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "enforcer-baggage-test", telemetry.Config{SampleRatio: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	pol, err := policy.Parse([]byte(baggagePolicy), "baggage.yaml")
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
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Tracer: tel.Tracer()}, codec, store, pol)
	for _, g := range []struct {
		purpose  string
		excluded []string
	}{{"personalisation", nil}, {"marketing", []string{"user.health"}}} {
		if _, err := store.Apply(ctx, consent.Change{
			ChangeID: "c-" + g.purpose, SubjectID: "s-1", Purpose: g.purpose, Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: time.Now().Add(-time.Minute),
			ExcludedCategories: g.excluded,
		}); err != nil {
			t.Fatal(err)
		}
	}
	value, err := codec.EncodeSingle("consentgate.events.Purchase", map[string]any{
		"event_id": "e-1", "subject_id": "s-1", "occurred_at": time.Now(), "order_id": "ORD-1", "currency": "EUR", "total_minor": int64(1299),
		"items": []any{map[string]any{"sku": "SKU-1", "name": "Vitamin D", "category": "pharmacy", "quantity": int32(1), "price_minor": int64(1299),
			"health_category": map[string]any{"string": "supplements"}}},
		"shipping_address": nil,
		"payment":          map[string]any{"method": "CARD", "card_brand": nil, "card_last4": nil},
		"email":            nil, "phone": nil, "ip_address": nil,
	})
	if err != nil {
		t.Fatal(err)
	}

	baggage := "user.id=" + baggageUserID + ",email=" + strings.ReplaceAll(baggageEmail, "@", "%40")
	cases := []struct {
		name    string
		headers []kafka.Header
	}{
		{"sampled parent", []kafka.Header{
			{Key: "traceparent", Value: []byte(sampledParent)}, {Key: "tracestate", Value: []byte("vendor=abc")},
			{Key: "baggage", Value: []byte(baggage)}, {Key: "x-customer-email", Value: []byte(baggageEmail)},
		}},
		{"sampled parent, header names in other cases", []kafka.Header{
			{Key: "TraceParent", Value: []byte(sampledParent)}, {Key: "Baggage", Value: []byte(baggage)},
			{Key: "BAGGAGE", Value: []byte("uid=" + baggageUserID)}, {Key: "X-User", Value: []byte(baggageUserID)},
		}},
		{"unsampled parent", []kafka.Header{
			{Key: "traceparent", Value: []byte(unsampledParent)}, {Key: "baggage", Value: []byte(baggage)},
		}},
		{"no trace context", []kafka.Header{{Key: "baggage", Value: []byte(baggage)}}},
		{"personal data where trace context belongs", []kafka.Header{
			{Key: "traceparent", Value: []byte(baggageEmail)}, {Key: "tracestate", Value: []byte("uid=" + baggageUserID)},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			batch := []kafka.Message{
				{Topic: "customer.events", Partition: 0, Offset: 1, Key: []byte("s-1"), Value: value, Headers: tc.headers},
				{Topic: "customer.events", Partition: 0, Offset: 2, Key: []byte("s-1"), Value: []byte{0xC3, 0x01, 1, 2}, Headers: tc.headers},
			}
			out, err := e.Process(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, m := range out {
				var kind string
				switch {
				case m.Topic == "consent.audit":
					kind = "audit"
				case strings.HasSuffix(m.Topic, ".dlq"):
					kind = "dead letter"
				default:
					kind, _ = headerValue(m, HeaderDecision)
				}
				seen[kind]++
				switch kind {
				case "PASSED", "dead letter":
					// The input's headers are forwarded; what the enforcer
					// adds is judged alone.
					checkForwarded(t, kind+" on "+m.Topic, tc.headers, m.Headers)
					checkAdded(t, kind+" on "+m.Topic, addedHeaders(tc.headers, m.Headers))
				case "REDACTED", "audit":
					checkAdded(t, kind+" on "+m.Topic, m.Headers)
				default:
					t.Errorf("record on %s with decision header %q", m.Topic, kind)
				}
			}
			for _, want := range []string{"PASSED", "REDACTED", "audit", "dead letter"} {
				if seen[want] == 0 {
					t.Errorf("no %s record written: the test does not cover it (%v)", want, seen)
				}
			}
			if seen["REDACTED"] != 2 {
				t.Errorf("%d redacted copies, want 2 (analytics without consent, marketing with health excluded)", seen["REDACTED"])
			}
		})
	}

	// The trace context itself still travels: a sampled record's outputs
	// and audit records carry the enforcer's span in the producer's trace.
	out, err := e.Process(ctx, []kafka.Message{{Topic: "customer.events", Offset: 3, Key: []byte("s-1"), Value: value,
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte(sampledParent)}, {Key: "baggage", Value: []byte(baggage)}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out {
		tp, _ := headerValue(m, "traceparent")
		if !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || tp == sampledParent {
			t.Errorf("record on %s has traceparent %q, want the enforcer's span in the producer's trace", m.Topic, tp)
		}
	}
}

// addedHeaders returns the headers of out that are not one of in's (each
// input header matched at most once, by exact key and value).
func addedHeaders(in, out []kafka.Header) []kafka.Header {
	used := make([]bool, len(in))
	var added []kafka.Header
next:
	for _, h := range out {
		for i, x := range in {
			if !used[i] && x.Key == h.Key && string(x.Value) == string(h.Value) {
				used[i] = true
				continue next
			}
		}
		added = append(added, h)
	}
	return added
}

// checkAdded fails when a header the enforcer wrote is not one of its own
// consentgate.* headers or W3C trace context, or carries personal data.
func checkAdded(t *testing.T, what string, written []kafka.Header) {
	t.Helper()
	for _, h := range written {
		k := strings.ToLower(h.Key)
		if k != "traceparent" && k != "tracestate" && !strings.HasPrefix(h.Key, "consentgate.") {
			t.Errorf("%s: the enforcer wrote header %q=%q (only consentgate.* and traceparent/tracestate allowed)", what, h.Key, h.Value)
			continue
		}
		for _, pd := range []string{baggageUserID, baggageEmail, "jane.roe%40"} {
			if strings.Contains(string(h.Value), pd) {
				t.Errorf("%s: header %q the enforcer wrote carries personal data: %q", what, h.Key, h.Value)
			}
		}
	}
}

// checkForwarded fails when an input header other than trace context (which
// the enforcer may replace with its own span) is missing from out.
func checkForwarded(t *testing.T, what string, in, out []kafka.Header) {
	t.Helper()
	var kept []kafka.Header
	for _, h := range in {
		if k := strings.ToLower(h.Key); k != "traceparent" && k != "tracestate" {
			kept = append(kept, h)
		}
	}
	if missing := addedHeaders(out, kept); len(missing) != 0 {
		t.Errorf("%s: input headers %v not forwarded (README: passed outputs and dead letters keep the input's headers)", what, missing)
	}
}

func headerValue(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, key) {
			return string(h.Value), true
		}
	}
	return "", false
}
