package intake

import (
	"bytes"
	"testing"
)

// FuzzParseSignals: ParseSignals never panics, returns either a submission
// or problems (never both), and no problem repeats a signal's value.
func FuzzParseSignals(f *testing.F) {
	f.Add([]byte(`{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","jurisdiction":"DE","signals":[{"type":"tcf","value":"CPxx-secret-value"}]}`))
	f.Add([]byte(`{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","signals":[{"type":"consent_mode","states":{"ad_user_data":"granted"}}]}`))
	f.Add([]byte(`{"signals":[{"type":1}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sub, problems := ParseSignals(body)
		if len(problems) > 0 {
			if sub.SubjectID != "" || len(sub.Signals) > 0 {
				t.Fatalf("a submission with problems: %+v", sub)
			}
			for _, p := range problems {
				if p.Reason == "" {
					t.Fatal("a problem without a reason")
				}
				if bytes.Contains([]byte(p.Reason), []byte("secret-value")) {
					t.Fatalf("problem %q repeats a signal value", p.Reason)
				}
			}
			return
		}
		if sub.SubjectID == "" || len(sub.Signals) == 0 || sub.CapturedAt.IsZero() {
			t.Fatalf("an accepted submission without subject, signals or time: %+v", sub)
		}
	})
}
