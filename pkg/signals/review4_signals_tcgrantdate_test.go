package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// review4Wins reports whether change a is applied over change b for the same
// purpose: the later captured_at, and in a same-millisecond tie the greater
// change id (pkg/consent's newer, restated).
func review4Wins(a, b consent.Change) bool {
	ta, tb := a.CapturedAt.UnixMilli(), b.CapturedAt.UnixMilli()
	return ta > tb || (ta == tb && a.ChangeID > b.ChangeID)
}

// TestReview4SignalsSameDayTCGrantLosesForeverToTCRefusal shows the mirror
// of the second review's day-rounding finding, created by its fix: a
// refusal is now dated at its submission, but a grant is still dated by the
// TC string's LastUpdated, which CMPs round down to UTC midnight. So:
// 10:00 the customer refuses purposes 1 and 3 in the CMP (DENY of marketing
// dated 10:00); 15:00 the same customer changes their mind and accepts
// (the CMP writes a new TC string, LastUpdated = today 00:00). The GRANT is
// dated 00:00 and loses to the 10:00 DENY. Worse, it loses for good: every
// later resend of that TC string (the next day, a month later) is dated by
// the same LastUpdated, the minimum, so the customer's explicit, newest
// choice is never applied until the CMP writes a string dated another day.
// Fail closed (no data flows that the customer refused), but a grant the
// customer gave is lost with no error: the 200 answer lists the change as
// recorded. A same-day grant should not be dated before a refusal made that
// day (e.g. date a day-granular grant no earlier than the latest refusal
// it follows, or the refusal at LastUpdated+24h capped by its submission).
func TestReview4SignalsSameDayTCGrantLosesForeverToTCRefusal(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	refuse := tc(nil, nil, nil) // every purpose refused
	refuse.IsServiceSpecific = true
	refuse.Created, refuse.LastUpdated = day, day
	refuseSub := Submission{SubjectID: "customer-r4", CapturedAt: day.Add(10 * time.Hour), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeTCF, Value: "cookie-refuse"}}}
	var deny *consent.Change
	for _, c := range ChangesFrom(pol, refuseSub, &Decoded{TCF: []*tcf.TCString{refuse}}) {
		if c.Purpose == "marketing" {
			deny = &c
		}
	}
	if deny == nil || !deny.Action.Restrictive() {
		t.Fatalf("setup: the refusing TC string made no restrictive marketing change: %+v", deny)
	}

	accept := tc([]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, nil, nil)
	accept.IsServiceSpecific = true
	accept.Created, accept.LastUpdated = day, day // the CMP's day-granular dates
	for _, sent := range []time.Time{day.Add(15 * time.Hour), day.Add(24*time.Hour + 9*time.Hour), day.Add(30 * 24 * time.Hour)} {
		grantSub := Submission{SubjectID: "customer-r4", CapturedAt: sent, Jurisdiction: "DE",
			Signals: []Signal{{Type: TypeTCF, Value: "cookie-accept"}}}
		var grant *consent.Change
		for _, c := range ChangesFrom(pol, grantSub, &Decoded{TCF: []*tcf.TCString{accept}}) {
			if c.Purpose == "marketing" && c.Action == consent.ActionGrant {
				grant = &c
			}
		}
		if grant == nil {
			t.Fatalf("setup: the accepting TC string made no marketing GRANT")
		}
		if !review4Wins(*grant, *deny) {
			t.Errorf("the marketing GRANT sent %s (TC string written after the 10:00 refusal, LastUpdated %s) is dated %s and loses to the %s dated %s: the customer's newer grant is never applied",
				sent.Format(time.RFC3339), accept.LastUpdated.Format(time.RFC3339), grant.CapturedAt.Format(time.RFC3339),
				deny.Action, deny.CapturedAt.Format(time.RFC3339))
		}
	}
}
