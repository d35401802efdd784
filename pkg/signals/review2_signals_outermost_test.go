package signals

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReview2SignalsOutermostRegionEscapesCountryRule shows that a customer
// in a French outermost region, located by its own ISO 3166-1 code (GF,
// GP, MQ, RE, YT, MF, as geo-IP databases answer), is outside a rule
// limited to FR: MatchJurisdiction("FR", "GF") is false and Coverage is
// CoverNone, so the rule's refusals do not apply. The first review made EEA
// cover these regions because the GDPR applies there as in the rest of the
// Union; French law applies there as in France, so a rule a policy limits
// to FR (a CNIL-specific reading: Consent Mode ad_user_data must be granted
// too) is skipped for a customer in French Guiana, and the EEA-wide TCF
// rule grants marketing alone: under "GF" the customer is granted what the
// same signals refuse under "FR" (the same holds for AX and FI). A region
// that is legally part of a country must be covered by a rule naming the
// country (or at least be CoverPartial there: refuse, never grant).
func TestReview2SignalsOutermostRegionEscapesCountryRule(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, `purposes:
  - id: marketing
streams:
  - purposes: [marketing]
signals:
  rules:
    - signal: tcf.purpose.1
      jurisdictions: [EEA]
      purposes: [marketing]
    - signal: consent_mode.ad_user_data
      jurisdictions: [FR]
      purposes: [marketing]
`)
	s := tc([]int{1}, nil, nil)
	s.IsServiceSpecific = true
	d := &Decoded{TCF: []*tcf.TCString{s}, ConsentMode: map[string]string{"ad_user_data": Denied}}
	if got := Evaluate(pol, d, "FR"); len(got) != 1 || got[0].Action != consent.ActionDeny {
		t.Fatalf("setup: jurisdiction FR: %v, want marketing DENY", brief(got))
	}
	for _, j := range []string{"GF", "RE"} {
		if got := Evaluate(pol, d, j); len(got) == 1 && got[0].Action == consent.ActionGrant {
			t.Errorf("jurisdiction %s (part of France): %v; under FR the same signals DENY marketing", j, brief(got))
		}
	}
}
