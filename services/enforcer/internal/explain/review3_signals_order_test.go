package explain

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview3ExplainChangeIDsIndependentOfSignalOrder: the change ids
// consent-sync gives hash the submission digest, and the digest hashes the
// signals in the order the body lists them (signals.SubmissionDigest).
// explain always builds its submission in a fixed order (tcf, gpp, usp,
// gpc, consent_mode: SignalFlags.Submission), so for a tag that sends
// [consent_mode, tcf] (or [gpc, usp], ...) explain prints change ids that
// consent-sync never gives: the audit record's consent_change_id and the
// enforcer's change_ids header name ids explain does not show, though the
// signals and the outcome are the same. The same signals must give the
// same ids (a digest over the signals in a canonical order), or explain
// must say they depend on an order it cannot be given.
func TestReview3ExplainChangeIDsIndependentOfSignalOrder(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse(repoFile(t, "pkg/policy/testdata/example.yaml"), "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	flags := SignalFlags{TCF: tcfP13456, ConsentMode: "ad_user_data=granted,ad_personalization=denied", Jurisdiction: "DE"}
	sub, err := flags.Submission("c-1001", goldenNow)
	if err != nil {
		t.Fatal(err)
	}
	rep, _, err := EvaluateSignals(pol, sub, nil, goldenNow)
	if err != nil {
		t.Fatal(err)
	}
	explained := map[string]string{}
	for _, p := range rep.Purposes {
		if p.Decided {
			explained[p.Purpose] = p.ChangeID
		}
	}
	// What consent-sync makes of the same two signals, sent the other way
	// round.
	body := signals.Submission{SubjectID: "c-1001", CapturedAt: goldenNow, Jurisdiction: "DE", Signals: []signals.Signal{
		{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "granted", "ad_personalization": "denied"}},
		{Type: signals.TypeTCF, Value: tcfP13456}}}
	changes, err := signals.Changes(pol, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 || len(changes) != len(explained) {
		t.Fatalf("%d changes, explain decides %d purposes", len(changes), len(explained))
	}
	for _, c := range changes {
		if explained[c.Purpose] != c.ChangeID {
			t.Errorf("%s: consent-sync gives %s (%s), explain shows %s for the same signals", c.Purpose, c.ChangeID, c.Action, explained[c.Purpose])
		}
	}
}
