package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// review2Wins reports whether change a is applied over change b for the same
// purpose: the later captured_at, and in a same-millisecond tie the greater
// change id (pkg/consent's rule, restated).
func review2Wins(a, b consent.Change) bool {
	ta, tb := a.CapturedAt.UnixMilli(), b.CapturedAt.UnixMilli()
	return ta > tb || (ta == tb && a.ChangeID > b.ChangeID)
}

// TestReview2SignalsDayRoundedTCRefusalLosesToEarlierSameDayGrant shows that
// an objection read from a TC string loses to a grant the customer made
// EARLIER the same day through another source. Since 2021 CMPs write
// Created and LastUpdated as the day of the last update, UTC midnight
// (pkg/signals/tcf/doc.go says so), and decidedAt dates a DENY/WITHDRAW
// read from TC strings by that LastUpdated. So: 10:00 the customer grants
// marketing through Consent Mode (GRANT dated 10:00); 15:00 the CMP records
// the customer refusing purposes 1 and 3 (TC string LastUpdated = today
// 00:00). The DENY is dated 00:00 and is older than the 10:00 grant:
// consent-sync keeps marketing granted, no revocation notice is owed, and
// the refusal is lost. A refusal must never be backdated below the time it
// reached us unless something proves it is older; at the least a
// day-granular LastUpdated must not date a refusal at the start of its day.
func TestReview2SignalsDayRoundedTCRefusalLosesToEarlierSameDayGrant(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	grantSub := Submission{SubjectID: "customer-day", CapturedAt: day.Add(10 * time.Hour), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted}}}}
	var grant *consent.Change
	for _, c := range ChangesFrom(pol, grantSub, &Decoded{ConsentMode: map[string]string{"ad_user_data": Granted}}) {
		if c.Purpose == "marketing" && c.Action == consent.ActionGrant {
			grant = &c
		}
	}
	if grant == nil {
		t.Fatal("setup: Consent Mode ad_user_data=granted made no marketing GRANT")
	}

	s := tc(nil, nil, nil) // every purpose refused
	s.IsServiceSpecific = true
	s.Created, s.LastUpdated = day, day // day-granular, as CMPs write them
	refuseSub := Submission{SubjectID: "customer-day", CapturedAt: day.Add(15 * time.Hour), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeTCF, Value: "cookie"}}}
	var deny *consent.Change
	for _, c := range ChangesFrom(pol, refuseSub, &Decoded{TCF: []*tcf.TCString{s}}) {
		if c.Purpose == "marketing" {
			deny = &c
		}
	}
	if deny == nil || !deny.Action.Restrictive() {
		t.Fatalf("setup: the TC string refusing purposes 1 and 3 made no restrictive marketing change: %+v", deny)
	}
	if !review2Wins(*deny, *grant) {
		t.Errorf("the %s of marketing submitted at %s (TC string LastUpdated %s) is dated %s and loses to the GRANT captured at %s the same day: the refusal is lost",
			deny.Action, refuseSub.CapturedAt.Format(time.RFC3339), s.LastUpdated.Format(time.RFC3339),
			deny.CapturedAt.Format(time.RFC3339), grant.CapturedAt.Format(time.RFC3339))
	}
}
