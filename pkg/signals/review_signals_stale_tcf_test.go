package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReviewSignalsStaleTCStringDoesNotOutdateWithdrawal shows that a TC
// string re-sent long after the customer's decision grants anew, dated by
// the request. TC strings live in a cookie and are sent again on every
// page view; captured_at is "the consent banner's or the request's time"
// (Submission.CapturedAt), and every change takes it, although the string
// itself says when the decision was made (LastUpdated). So a customer who
// accepted in January (TC string last updated 2026-01-15) and withdrew
// marketing through another channel in June (a WITHDRAW captured
// 2026-06-01) is granted marketing again by the next page view in December
// that still carries the January string: the GRANT is dated 2026-12-01 and
// is newer than the withdrawal, which is lost. A grant read from a TC string
// must not be dated after the decision the string records (or the string
// must not be used that long after its LastUpdated).
func TestReviewSignalsStaleTCStringDoesNotOutdateWithdrawal(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	s := tc(all, nil, []int{1})
	s.IsServiceSpecific = true
	s.Created = time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	s.LastUpdated = s.Created
	withdrawn := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) // a WITHDRAW of marketing from the regular intake
	sub := Submission{SubjectID: "customer-stale", CapturedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeTCF, Value: "cookie"}}}
	for _, c := range ChangesFrom(pol, sub, &Decoded{TCF: []*tcf.TCString{s}}) {
		if c.Purpose != "marketing" || c.Action != consent.ActionGrant {
			continue
		}
		if c.CapturedAt.UnixMilli() > withdrawn.UnixMilli() {
			t.Errorf("GRANT of marketing from a TC string last updated %s is dated %s: it beats the WITHDRAW of %s",
				s.LastUpdated.Format(time.DateOnly), c.CapturedAt.Format(time.RFC3339), withdrawn.Format(time.RFC3339))
		}
	}
}
