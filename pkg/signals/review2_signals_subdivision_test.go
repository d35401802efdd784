package signals

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
)

// TestReview2SignalsUnassignedSubdivisionLaxerThanCountry shows that a
// jurisdiction with a subdivision that does not exist ("US-CAL", a typo of
// US-CA; policy.CheckJurisdiction checks the country against the ISO list
// but takes any 1 to 3 letters or digits as subdivision) puts the customer
// outside every rule limited to a real subdivision, refusals included: the
// rule limited to [US-CA] gets CoverNone for "US-CAL", while for the bare
// country "US" it gets CoverPartial and still refuses. So a customer who
// sent Sec-GPC: 1 with a usnat string that did not opt out is granted sale
// under "US-CAL" and has it withdrawn under "US": a malformed jurisdiction
// yields a grant the country alone would not, which is what the first
// review fixed for unknown countries (TestReviewSignalsPseudoJurisdiction-
// KeepsRefusals) and for country-only jurisdictions. An unassigned
// subdivision must be refused like an unassigned country (or read as its
// country).
func TestReview2SignalsUnassignedSubdivisionLaxerThanCountry(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, `purposes:
  - id: sale
    opt_out: true
streams:
  - purposes: [sale]
signals:
  rules:
    - signal: gpp.usnat.sale_opt_out
      jurisdictions: [US]
      purposes: [sale]
    - signal: gpc
      jurisdictions: [US-CA]
      purposes: [sale]
`)
	d := &Decoded{GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 2})}, GPC: true}
	country := Evaluate(pol, d, "US")
	if len(country) != 1 || country[0].Action != consent.ActionWithdraw {
		t.Fatalf("setup: jurisdiction US: %v, want sale WITHDRAW (GPC of a customer who may be in US-CA)", brief(country))
	}
	const typo = "US-CAL"
	if err := policy.CheckJurisdiction(typo); err != nil {
		return // refused at the intake: sound
	}
	got := Evaluate(pol, d, typo)
	if len(got) != 1 || got[0].Action != consent.ActionWithdraw {
		t.Errorf("jurisdiction %s (accepted by CheckJurisdiction): %v; under US the same signals WITHDRAW sale", typo, brief(got))
	}
}
