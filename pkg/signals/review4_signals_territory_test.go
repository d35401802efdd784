package signals

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
)

// TestReview4SignalsUSTerritoryCodeEscapesUSRule shows the second review's
// outermost-region finding for the United States, which its fix (partOf
// lists only French and Finnish territories) left open. Puerto Rico, Guam,
// the US Virgin Islands, American Samoa, the Northern Mariana Islands and
// the Minor Outlying Islands have both an ISO 3166-1 code (PR, GU, VI, AS,
// MP, UM, as geo-IP databases answer) and an ISO 3166-2:US code (US-PR,
// ...); CheckJurisdiction accepts both. A rule limited to US covers "US-PR"
// but not "PR": under "PR" the GPC objection limited to US is skipped and
// the unlimited Consent Mode rule grants marketing; under "US-PR" the same
// signals WITHDRAW it. One place, two assigned codes, a grant under one
// where the other refuses.
func TestReview4SignalsUSTerritoryCodeEscapesUSRule(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, `purposes:
  - id: marketing
streams:
  - purposes: [marketing]
signals:
  rules:
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
    - signal: gpc
      jurisdictions: [US]
      purposes: [marketing]
`)
	d := &Decoded{GPC: true, ConsentMode: map[string]string{"ad_user_data": Granted}}
	for _, code := range []string{"PR", "GU", "VI", "AS", "MP", "UM"} {
		if got := Evaluate(pol, d, "US-"+code); len(got) != 1 || !got[0].Action.Restrictive() {
			t.Fatalf("setup: jurisdiction US-%s: %v, want marketing WITHDRAW", code, brief(got))
		}
		if got := Evaluate(pol, d, code); len(got) == 1 && got[0].Action == consent.ActionGrant {
			t.Errorf("jurisdiction %s: %v; under US-%s the same signals WITHDRAW marketing", code, brief(got), code)
		}
	}
}
