package intake

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReviewSignalsDuplicateMembersRefused shows that a member given twice
// inside a signal object (or a Consent Mode state given twice) is read as
// "the last one wins", silently, while the same duplication at the top of
// the body is refused ("appears more than once"). A duplicated key is
// ambiguous: other JSON readers (the sender's own logs, an audit copy, a
// proxy) take the first. Here {"ad_user_data": "denied", "ad_user_data":
// "granted"} becomes a GRANT of marketing, and a gpc signal with "value":
// "1" then "value": "0" withdraws nothing. A malformed signal must be an
// error, never read one way of two.
func TestReviewSignalsDuplicateMembersRefused(t *testing.T) {
	t.Parallel()
	pol := devPolicy(t)
	for _, tc := range []struct{ name, signal string }{
		{"state twice", `{"type":"consent_mode","states":{"ad_user_data":"denied","ad_personalization":"granted","ad_user_data":"granted"}}`},
		{"value twice", `{"type":"gpc","value":"1","value":"0"}`},
		{"type twice", `{"type":"gpc","type":"usp","value":"1YNN"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","jurisdiction":"US-CA","signals":[` + tc.signal + `]}`
			sub, problems := ParseSignals([]byte(body))
			if len(problems) > 0 {
				return // refused: what the test wants
			}
			cs, err := signals.Changes(pol, sub)
			var got []string
			for _, c := range cs {
				got = append(got, c.Purpose+":"+string(c.Action))
			}
			t.Errorf("duplicated member accepted and read as %+v: changes %v (%v)", sub.Signals, got, err)
		})
	}
}
