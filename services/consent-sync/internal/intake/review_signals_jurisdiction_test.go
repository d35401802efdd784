package intake

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReviewSignalsPseudoJurisdictionKeepsRefusals shows that a
// jurisdiction the intake accepts but no rule can name ("EU", "UK": two
// upper-case letters, so they pass the syntax check, yet they are not ISO
// 3166-1 codes; "EU" is what several geo-IP databases answer for European
// addresses they cannot place, "UK" a common spelling of GB) counts as a
// known jurisdiction outside every rule. The dev policy's TCF rules are
// limited to [EEA, GB], so a TC string that refuses purpose 8 (analytics)
// takes nothing away: the analytics GRANT recorded before stays. With the
// jurisdiction left out the same string DENIES analytics (unknown
// jurisdiction: refusals apply). Either the intake must refuse such a
// jurisdiction, or the engine must treat it as unknown; it must not drop
// the refusal.
func TestReviewSignalsPseudoJurisdictionKeepsRefusals(t *testing.T) {
	t.Parallel()
	pol := devPolicy(t)
	// iabgpp-es test string, TCF policy version 5: consents {1,3-6}, LI {2}:
	// purpose 8 is neither consented nor on legitimate interest.
	const tc = "CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA"
	actions := func(j string) (map[string]consent.Action, bool) {
		jm := ""
		if j != "" {
			jm = `"jurisdiction":"` + j + `",`
		}
		body := `{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z",` + jm + `"signals":[{"type":"tcf","value":"` + tc + `"}]}`
		sub, problems := ParseSignals([]byte(body))
		if len(problems) > 0 {
			return nil, false
		}
		cs, err := signals.Changes(pol, sub)
		if err != nil {
			t.Fatalf("%q: %v", j, err)
		}
		out := map[string]consent.Action{}
		for _, c := range cs {
			out[c.Purpose] = c.Action
		}
		return out, true
	}
	unknown, _ := actions("")
	if unknown["analytics"] != consent.ActionDeny {
		t.Fatalf("without a jurisdiction: %v, want analytics DENY", unknown)
	}
	for _, j := range []string{"EU", "UK"} {
		got, accepted := actions(j)
		if accepted && got["analytics"] != consent.ActionDeny {
			t.Errorf("jurisdiction %q accepted and the TC string's refusal of analytics dropped: changes %v", j, got)
		}
	}
}
