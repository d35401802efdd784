package explain

import (
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview3UndecidedNoteOfErasedSubject: for a purpose the signals do
// not decide, explain says what the consent state keeps (undecidedNote),
// but it reads only the purpose's entry and ignores the erasure: for an
// erased subject it tells an opt-out purpose is "allowed until the
// customer objects" and names a pre-erasure grant as what the purpose
// keeps, while the engine (consent.State.Check) allows neither: the
// erasure hides both. The note claims consent that is not there.
func TestReview3UndecidedNoteOfErasedSubject(t *testing.T) {
	t.Parallel()
	pol := mustExample(t)
	now := goldenNow
	base := &consent.State{SubjectID: "c-1001", ErasedAt: now.Add(-time.Hour), ErasedBy: "erase-1", Purposes: map[string]consent.PurposeState{
		"personalisation": {Status: consent.StatusGranted, ChangeID: "chg-old", LegalBasis: consent.BasisConsent, CapturedAt: now.Add(-2 * time.Hour)},
	}}
	sub := signals.Submission{SubjectID: "c-1001", CapturedAt: now, Signals: []signals.Signal{
		{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "denied"}}}}
	rep, st, err := EvaluateSignals(pol, sub, base, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Purposes {
		if p.Decided {
			continue
		}
		v := st.Check(p.Purpose, now)
		if v.Allowed {
			t.Fatalf("%s allowed after the erasure", p.Purpose)
		}
		if strings.Contains(p.Note, "allowed until the customer objects") || strings.Contains(p.Note, "granted by the consent file's change") {
			t.Errorf("%s: note %q, but the erasure %s leaves it not allowed (%s)", p.Purpose, p.Note, base.ErasedBy, v.Reason)
		}
	}
}
