package signals

import (
	"testing"
	"time"
)

// TestReviewSignalsChangeIDNamesItsContent shows that the change id of a
// signal change does not depend on what the change says: the same
// submission evaluated under two policies (a reload of POLICY_FILE between
// a 503 and the client's resend, or a replay of stored submissions after a
// policy fix) yields a GRANT and a DENY for the same purpose with the same
// change id and the same captured_at.
//
// consent-sync treats an id it has seen as a duplicate (same captured_at,
// same id: not newer, not applied), so the DENY made under the corrected
// policy is silently dropped and the GRANT stays; and a rebuild from the
// topic, which holds both records, folds two different changes that tie
// exactly, so the result depends on the order it reads them in. An id that
// is the same for a resend must also be different for a different change
// (hash the outcome: action, basis, exclusions, or the policy's rules).
func TestReviewSignalsChangeIDNamesItsContent(t *testing.T) {
	t.Parallel()
	const head = `purposes:
  - id: marketing
streams:
  - purposes: [marketing]
signals:
  rules:
`
	before := mustPolicy(t, head+"    - signal: consent_mode.ad_user_data\n      purposes: [marketing]\n")
	after := mustPolicy(t, head+"    - signal: consent_mode.ad_personalization\n      purposes: [marketing]\n")
	sub := Submission{SubjectID: "customer-1", CapturedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted, "ad_personalization": Denied}}}}
	a, err := Changes(before, sub)
	if err != nil || len(a) != 1 {
		t.Fatalf("before: %+v %v", a, err)
	}
	b, err := Changes(after, sub)
	if err != nil || len(b) != 1 {
		t.Fatalf("after: %+v %v", b, err)
	}
	if a[0].Action == b[0].Action {
		t.Fatalf("the two policies agree (%s): the test needs them to differ", a[0].Action)
	}
	if a[0].ChangeID == b[0].ChangeID {
		t.Errorf("%s for %s and %s for %s share change id %s and captured_at: consent-sync keeps whichever it saw first",
			a[0].Action, a[0].Purpose, b[0].Action, b[0].Purpose, a[0].ChangeID)
	}
}
