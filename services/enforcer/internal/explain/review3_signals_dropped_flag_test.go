package explain

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview3ExplainDoesNotDropAGivenSignal: a signal given on the command
// line is silently left out of the submission in two ways, and explain
// then prints decisions for a submission consent-sync would not make:
//
//   - an empty value (--tcf "" from an unset shell variable, say):
//     SignalFlags keeps only non-empty strings, so --tcf "" --usp 1YYN
//     explains the USP string alone (exit 0), while consent-sync answers
//     400 to a body holding {"type": "tcf", "value": ""} (tcf.Parse refuses
//     it): explain passes a malformed signal by ignoring it;
//   - a flag given twice (--tcf A --tcf B): the flag package keeps the last,
//     so explain reads B only, while a submission of both strings reads
//     them together (a refusal in either wins): here explain shows
//     analytics granted by B where consent-sync, given both, denies it.
//
// Either must be refused (a usage error naming the flag) or, for the
// second, both strings used.
func TestReview3ExplainDoesNotDropAGivenSignal(t *testing.T) {
	t.Parallel()
	base := []string{"--policy", examplePolicy, "--event", filepath.Join("testdata", "events", "purchase.json"), "--now", "2026-06-01T12:00:00Z"}

	t.Run("empty value", func(t *testing.T) {
		t.Parallel()
		if _, err := signals.Decode(signals.Submission{SubjectID: "c-1001", CapturedAt: goldenNow,
			Signals: []signals.Signal{{Type: signals.TypeTCF, Value: ""}, {Type: signals.TypeUSP, Value: "1YYN"}}}); err == nil {
			t.Fatal("reference: consent-sync's decoder accepts an empty TC string")
		}
		code, out, _ := runExplain(t, append(base, "--tcf", "", "--usp", "1YYN")...)
		if code == ExitOK {
			t.Errorf("explain explains a submission with an empty --tcf (exit 0, signals %q), consent-sync refuses it", firstLine(out, "consent from signals"))
		}
	})

	t.Run("flag given twice", func(t *testing.T) {
		t.Parallel()
		both, err := signals.Changes(mustExample(t), signals.Submission{SubjectID: "c-1001", CapturedAt: goldenNow, Jurisdiction: "DE",
			Signals: []signals.Signal{{Type: signals.TypeTCF, Value: tcfP13456}, {Type: signals.TypeTCF, Value: tcfAll}}})
		if err != nil {
			t.Fatal(err)
		}
		var analytics string
		for _, c := range both {
			if c.Purpose == "analytics" {
				analytics = string(c.Action)
			}
		}
		if analytics != "DENY" {
			t.Fatalf("reference: both strings give analytics %q", analytics)
		}
		code, out, _ := runExplain(t, append(base, "--jurisdiction", "DE", "--tcf", tcfP13456, "--tcf", tcfAll)...)
		if code == ExitOK && strings.Contains(out, "  analytics: GRANT") {
			t.Errorf("explain kept only the second --tcf: analytics GRANT, the two strings together DENY it")
		}
	})
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return l
		}
	}
	return ""
}

func mustExample(t *testing.T) *policy.Policy {
	t.Helper()
	pol, err := policy.Parse(repoFile(t, "pkg/policy/testdata/example.yaml"), "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return pol
}
