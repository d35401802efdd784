package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReview4SignalsStaleTCRefusalOutdatesLaterGrant is the mirror of the
// first review's stale-TC-string finding, reopened by the second review's
// fix (refusals are no longer dated by LastUpdated). A customer refused
// marketing in the CMP in January (TC string LastUpdated 2026-01-15, kept in
// the cookie); in June they granted marketing through the regular consent
// intake (the account page: a GRANT captured 2026-06-01). Every page view
// still sends the January cookie, and each one now makes a DENY dated by
// the request (December), newer than the June grant: the customer's later
// explicit grant is overturned by a months-old refusal, and is overturned
// again on every page view. This fails closed (no data flows the customer
// refused), so it is the safe side of the trade-off, but it loses data flow
// the customer granted, silently. A refusal need not be dated at midnight
// of its day (the day-rounding problem) to be dated no later than the end of
// its LastUpdated day when that is before the submission.
func TestReview4SignalsStaleTCRefusalOutdatesLaterGrant(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	s := tc(nil, nil, nil) // every purpose refused
	s.IsServiceSpecific = true
	s.Created = time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	s.LastUpdated = s.Created
	granted := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) // a GRANT of marketing from the regular intake
	sub := Submission{SubjectID: "customer-stale-refusal", CapturedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeTCF, Value: "cookie"}}}
	found := false
	for _, c := range ChangesFrom(pol, sub, &Decoded{TCF: []*tcf.TCString{s}}) {
		if c.Purpose != "marketing" || !c.Action.Restrictive() {
			continue
		}
		found = true
		if c.CapturedAt.UnixMilli() > granted.UnixMilli() {
			t.Errorf("%s of marketing from a TC string last updated %s is dated %s: it beats the GRANT of %s the customer made later",
				c.Action, s.LastUpdated.Format(time.DateOnly), c.CapturedAt.Format(time.RFC3339), granted.Format(time.RFC3339))
		}
	}
	if !found {
		t.Fatal("setup: the refusing TC string made no restrictive marketing change")
	}
}
