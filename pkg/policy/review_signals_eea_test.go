package policy

import "testing"

// TestReviewSignalsEEACoversOutermostRegions shows that the jurisdiction
// EEA misses EU territory that has its own ISO 3166-1 alpha-2 code: the
// French outermost regions (Guadeloupe GP, French Guiana GF, Martinique MQ,
// Réunion RE, Mayotte YT, Saint-Martin MF) and the Åland Islands (AX) are
// part of the EU and under the GDPR, and geo-IP services report them under
// these codes, not as FR or FI. A customer there is a known jurisdiction
// outside every rule limited to EEA, so a TC string's refusals take nothing
// away (Evaluate skips a non-applying rule whenever the jurisdiction is
// known): the grant recorded before stays in force.
func TestReviewSignalsEEACoversOutermostRegions(t *testing.T) {
	t.Parallel()
	for _, j := range []string{"GP", "GF", "MQ", "RE", "YT", "MF", "AX"} {
		if !MatchJurisdiction("EEA", j) {
			t.Errorf("EEA does not cover %s (EU territory under the GDPR)", j)
		}
	}
}
