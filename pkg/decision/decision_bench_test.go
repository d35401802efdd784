package decision_test

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/schemas"
)

// benchPolicy is the policy of `make bench` (e2e/bench/policy.yaml): three
// purpose streams, analytics in redact mode.
const benchPolicy = `
purposes:
  - id: marketing
    legal_bases: [CONSENT]
  - id: analytics
    legal_bases: [CONSENT, LEGITIMATE_INTEREST]
  - id: personalisation
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement, consentgate.events.Purchase]
    on_missing_consent: drop
    excluded_categories: remove
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.behavior.*
        action: keep
    default_treatment: remove
  - topic: compliant.personalisation
    purposes: [personalisation]
    excluded_categories: drop
`

// BenchmarkDecide decides one Purchase event on every stream of the bench
// policy (one event's worth of decisions) for the consent states the
// benchmark's population holds.
func BenchmarkDecide(b *testing.B) {
	pol, err := policy.Parse([]byte(benchPolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	s, ok := cat.SchemaByName("consentgate.events.Purchase")
	if !ok {
		b.Fatal("no Purchase schema")
	}
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	state := func(ps consent.PurposeState) *consent.State {
		st := &consent.State{SubjectID: "cust-0012345", Purposes: map[string]consent.PurposeState{}}
		for _, p := range []string{"marketing", "analytics", "personalisation"} {
			ps.ChangeID = "chg-" + p
			st.Purposes[p] = ps
		}
		return st
	}
	granted := consent.PurposeState{Status: consent.StatusGranted, CapturedAt: now.Add(-time.Hour), LegalBasis: consent.BasisConsent}
	excluding := granted
	excluding.ExcludedCategories = []string{"user.health"}
	expired := granted
	expired.ExpiresAt = now.Add(-time.Minute)
	cases := []struct {
		name  string
		state *consent.State
	}{
		{"granted", state(granted)},
		{"granted-excluding-health", state(excluding)},
		{"denied", state(consent.PurposeState{Status: consent.StatusDenied, CapturedAt: now.Add(-time.Hour), LegalBasis: consent.BasisConsent})},
		{"expired", state(expired)},
		{"unknown-subject", nil},
	}
	for _, bc := range cases {
		in := decision.Input{Schema: s.FullName, Fields: decision.FieldsOf(s, s).Fields, State: bc.state, Now: now}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, st := range pol.Streams {
					_ = decision.Decide(pol, st, in)
				}
			}
		})
	}
}
