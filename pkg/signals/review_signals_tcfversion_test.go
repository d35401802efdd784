package signals

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReviewSignalsUnknownTCFPolicyVersionRefused shows that a TC string
// of a TCF policy version that does not exist yet (6 and up; 4 is v2.2, 5
// v2.3) is read as if it were v2.2/v2.3. The policy version is what defines
// the purposes and their legal bases (v2.2 redefined them and withdrew
// legitimate interest from purposes 3-6); reading a future version's bits
// by today's meaning is a guess, and the design contract says unknown
// versions are errors, "not guesses". checkTCF refuses versions below 4 but
// lets every version above 5 through.
func TestReviewSignalsUnknownTCFPolicyVersionRefused(t *testing.T) {
	t.Parallel()
	for _, v := range []int{6, 7, 63} {
		if err := checkTCF(&tcf.TCString{Version: 2, PolicyVersion: v, IsServiceSpecific: true}); err == nil {
			t.Errorf("TCF policy version %d accepted and read as v2.2/v2.3", v)
		}
	}
}
