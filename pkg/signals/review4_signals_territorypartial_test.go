package signals

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReview4SignalsCountryCustomerSkipsTerritoryRule shows the other half
// of partOf: a customer known only as FR (or FI) may be in a French
// outermost region (or the Aland Islands), as a customer known as US may be
// in California; Coverage makes a rule limited to US-CA CoverPartial for
// "US" (it may refuse, never grant), but a rule limited to GF (or AX) is
// CoverNone for "FR" (or "FI"): its refusal is skipped and the customer is
// granted what some place they may be in refuses.
func TestReview4SignalsCountryCustomerSkipsTerritoryRule(t *testing.T) {
	t.Parallel()
	s := tc([]int{1}, nil, nil)
	s.IsServiceSpecific = true
	d := &Decoded{TCF: []*tcf.TCString{s}, ConsentMode: map[string]string{"ad_user_data": Denied}}
	for _, tt := range []struct{ rule, customer string }{
		{"US-CA", "US"}, // the sound case the others must match
		{"GF", "FR"},
		{"RE", "FR"},
		{"AX", "FI"},
	} {
		pol := mustPolicy(t, `purposes:
  - id: marketing
streams:
  - purposes: [marketing]
signals:
  rules:
    - signal: tcf.purpose.1
      purposes: [marketing]
    - signal: consent_mode.ad_user_data
      jurisdictions: [`+tt.rule+`]
      purposes: [marketing]
`)
		if got := Evaluate(pol, d, tt.rule); len(got) != 1 || got[0].Action != consent.ActionDeny {
			t.Fatalf("setup: jurisdiction %s: %v, want marketing DENY", tt.rule, brief(got))
		}
		if got := Evaluate(pol, d, tt.customer); len(got) == 1 && got[0].Action == consent.ActionGrant {
			t.Errorf("rule limited to %s, customer %s (who may be in %s): %v, want no grant (the rule may apply)", tt.rule, tt.customer, tt.rule, brief(got))
		}
	}
}
