package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

// TestReview2SignalsUSPWithoutNoticeGrants is the USP form of
// TestReview2SignalsOptOutWithoutNoticeGrants, through the real decoder: the
// US Privacy string "1NNN" says the customer was NOT given notice and the
// opportunity to opt out (second character N) and did not opt out (third
// character N). uspSection keeps only the opt-out character, so Changes
// makes a GRANT of sale from a choice the customer was never offered. With
// notice N, the opt-out character records no choice: it must read as
// absent (or opted out), never as "did not opt out".
func TestReview2SignalsUSPWithoutNoticeGrants(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, `purposes:
  - id: sale
    opt_out: true
streams:
  - purposes: [sale]
signals:
  rules:
    - signal: gpp.uspv1.sale_opt_out
      purposes: [sale]
`)
	sub := Submission{SubjectID: "customer-usp", CapturedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Jurisdiction: "US-CA",
		Signals: []Signal{{Type: TypeUSP, Value: "1NNN"}}}
	cs, err := Changes(pol, sub)
	if err != nil {
		t.Fatalf("1NNN is refused (%v): sound, but then this test shows nothing", err)
	}
	for _, c := range cs {
		if c.Purpose == "sale" && c.Action == consent.ActionGrant {
			t.Errorf("USP 1NNN (no notice given) makes a sale GRANT %s", c.ChangeID)
		}
	}
}
