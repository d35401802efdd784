package signals

import (
	"fmt"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

// TestReviewSignalsRestrictiveWinsSameMillisecondTie shows that a DENY made
// from signals can lose to a GRANT made from signals of the same subject and
// purpose captured in the same millisecond.
//
// consent-sync folds changes by (captured_at in milliseconds, then the
// greater change id, byte-wise: pkg/consent doc.go, "newest wins"). Signal
// change ids are "sig-" and hash digits, so which of two same-millisecond
// changes wins is a coin toss on the hashes, not "the restrictive one".
// Two submissions with the same captured_at are ordinary: CMPs and tag
// managers often send second (or coarser) precision, and a customer who
// clicks "accept" then "reject" within that second produces exactly this
// pair. About half of the subjects below keep the GRANT in force: the
// refusal is lost. Fail closed would give the restrictive change the win
// (e.g. ids of DENY/WITHDRAW that sort above every GRANT id of signals).
func TestReviewSignalsRestrictiveWinsSameMillisecondTie(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy) // consent_mode.ad_user_data -> marketing
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	lost := 0
	const subjects = 32
	for i := range subjects {
		subject := fmt.Sprintf("customer-%d", i)
		change := func(state string) consent.Change {
			cs, err := Changes(pol, Submission{SubjectID: subject, CapturedAt: at, Jurisdiction: "US-CA",
				Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": state}}}})
			if err != nil || len(cs) != 1 || cs[0].Purpose != "marketing" {
				t.Fatalf("%s %s: changes %+v, %v", subject, state, cs, err)
			}
			return cs[0]
		}
		grant, deny := change(Granted), change(Denied)
		if grant.Action != consent.ActionGrant || deny.Action != consent.ActionDeny {
			t.Fatalf("actions %s %s", grant.Action, deny.Action)
		}
		// The store's order: the same millisecond, so the greater id wins.
		if grant.CapturedAt.UnixMilli() == deny.CapturedAt.UnixMilli() && grant.ChangeID > deny.ChangeID {
			lost++
			if lost <= 3 {
				t.Errorf("%s: GRANT %s beats DENY %s captured in the same millisecond: the refusal is lost", subject, grant.ChangeID, deny.ChangeID)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d subjects keep a same-millisecond GRANT over the DENY", lost, subjects)
	}
}

// TestReviewSignalsGrantIDsDoNotOutrankIntakeWithdrawals shows the same tie
// across the two intakes, and there it is not even a coin toss: every
// signal change id starts with "sig-", and 's' sorts above every character
// of a UUID or hex id ('0'-'9', 'a'-'f', '-'), the usual ids of changes
// posted to /v1/consent-changes. So a GRANT made from signals wins every
// same-millisecond tie against a WITHDRAW with such an id: a customer who
// withdraws in the preference centre at the second their page posts its
// (still granting) TC string or Consent Mode states keeps the grant.
func TestReviewSignalsGrantIDsDoNotOutrankIntakeWithdrawals(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cs, err := Changes(pol, Submission{SubjectID: "customer-x", CapturedAt: at, Jurisdiction: "US-CA",
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted}}}})
	if err != nil || len(cs) != 1 || cs[0].Action != consent.ActionGrant {
		t.Fatalf("changes %+v, %v", cs, err)
	}
	for _, withdrawID := range []string{"f47ac10b-58cc-4372-a567-0e02b2c3d479", "ffffffff-ffff-4fff-bfff-ffffffffffff", "01HZY3W5Q7"} {
		if cs[0].ChangeID > withdrawID {
			t.Errorf("signal GRANT %s beats a same-millisecond WITHDRAW %s from the change intake", cs[0].ChangeID, withdrawID)
		}
	}
}
