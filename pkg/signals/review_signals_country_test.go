package signals

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
)

// TestReviewSignalsCountryOnlyJurisdictionKeepsSubdivisionRefusals shows
// that a jurisdiction known only to the country ("US", what most geo-IP
// answers give) drops every refusal of rules limited to one of its
// subdivisions. A policy that reads the California section where it
// applies ([US-CA]) gets, from a customer whose CMP sent a usca string
// with sale_opt_out = 1 (opted out) and a jurisdiction of "US", no change
// at all: "US" is a known jurisdiction that US-CA does not cover, so the
// rule is skipped, refusal included, and the earlier sale grant stays. The
// customer may well be in California (their CMP thought so). For the rule,
// "US" is as good as unknown, and an unknown jurisdiction takes away.
func TestReviewSignalsCountryOnlyJurisdictionKeepsSubdivisionRefusals(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, `purposes:
  - id: sale
    opt_out: true
streams:
  - purposes: [sale]
signals:
  rules:
    - signal: gpp.usca.sale_opt_out
      jurisdictions: [US-CA]
      purposes: [sale]
`)
	d := &Decoded{GPP: []gpp.Section{{ID: 8, Name: "usca", Version: 1, Fields: map[string]int{"sale_opt_out": 1}}}}
	if got := Evaluate(pol, d, ""); len(got) != 1 || got[0].Action != consent.ActionWithdraw {
		t.Fatalf("unknown jurisdiction: %v, want sale WITHDRAW", brief(got))
	}
	if got := Evaluate(pol, d, "US"); len(got) != 1 || got[0].Action != consent.ActionWithdraw {
		t.Errorf("jurisdiction US: %v, want sale WITHDRAW (the opt-out of a customer who may be in US-CA)", brief(got))
	}
}
