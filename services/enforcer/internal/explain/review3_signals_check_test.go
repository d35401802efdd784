package explain

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview3CheckCategoryRulesThatNeverApply: a category rule only
// narrows GRANTs the same signals make (signals.Evaluate: excluded() is
// read for a GRANT outcome only), so a category rule for purposes that no
// purpose rule maps, or a signals section made only of category rules,
// maps signals to nothing: whatever the customer sends, consent-sync
// records no change (200 "the signals decide no purpose"). check calls
// such a policy clean: no warning, and the summary lists the source as
// mapped. The test first shows with the engine that the signals change
// nothing, then asks check for at least one warning per case.
func TestReview3CheckCategoryRulesThatNeverApply(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	const head = `purposes:
  - id: marketing
  - id: analytics
streams:
  - purposes: [marketing]
  - purposes: [analytics]
signals:
  rules:
`
	cases := []struct {
		name, rules string
		sub         signals.Submission
	}{
		{
			name: "only category rules",
			rules: `    - signal: tcf.special_feature.1
      categories: [user.location.precise]
`,
			sub: signals.Submission{SubjectID: "c-1", CapturedAt: goldenNow, Jurisdiction: "DE",
				Signals: []signals.Signal{{Type: signals.TypeTCF, Value: tcfP13456}}}, // special feature 1 not opted in: the rule refuses
		},
		{
			name: "a category rule for a purpose no rule decides",
			rules: `    - signal: consent_mode.ad_user_data
      purposes: [marketing]
    - signal: consent_mode.ad_personalization
      categories: [user.contact]
      purposes: [analytics]
`,
			sub: signals.Submission{SubjectID: "c-1", CapturedAt: goldenNow, Jurisdiction: "DE",
				Signals: []signals.Signal{{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "granted", "ad_personalization": "denied"}}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pol, err := policy.Parse([]byte(head+tc.rules), "p.yaml")
			if err != nil {
				t.Fatal(err)
			}
			// The engine: the category rule's field is read (it refuses
			// or allows), yet no change narrows anything by it.
			changes, err := signals.Changes(pol, tc.sub)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range changes {
				if len(c.ExcludedCategories) > 0 {
					t.Fatalf("the category rule applied (%+v): the case does not show the gap", c)
				}
			}
			res := Check([]byte(head+tc.rules), "p.yaml", cat, true)
			if !res.OK() {
				t.Fatalf("errors %v", res.Errors)
			}
			if len(res.Warnings) == 0 {
				t.Errorf("check calls the policy clean, yet its category rule can never exclude anything (%d changes from the reference signals, none narrowed)", len(changes))
			}
		})
	}
}
