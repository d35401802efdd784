package signals

import (
	"testing"
)

// TestReviewSignalsUnknownJurisdictionNoLaxerThanAnyKnown shows that a
// submission whose jurisdiction is not known can be granted a purpose that
// no jurisdiction the policy names would grant on the same signals.
//
// The policy asks for two Consent Mode states for marketing, the second
// only in the EEA. A customer in DE who sent only ad_user_data gets no
// grant (ad_personalization is absent: absence is never a grant). With the
// jurisdiction unknown, Evaluate skips the EEA rule unless it refuses, so
// its absence no longer blocks, and marketing is GRANTED: the customer may
// well be in the EEA. "When the jurisdiction is not known, rules limited
// to jurisdictions may take consent away but never grant" is kept to the
// letter but the grant is laxer than the EEA's. Category rules are already
// applied fail closed for an unknown jurisdiction (excluded()); purpose
// rules should be too: an unknown jurisdiction may grant only what every
// jurisdiction would.
func TestReviewSignalsUnknownJurisdictionNoLaxerThanAnyKnown(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, `purposes:
  - id: marketing
streams:
  - purposes: [marketing]
signals:
  rules:
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
    - signal: consent_mode.ad_personalization
      jurisdictions: [EEA]
      purposes: [marketing]
`)
	d, err := Decode(Submission{Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := brief(Evaluate(pol, d, "DE")); len(got) != 0 {
		t.Fatalf("DE: %v, want nothing (ad_personalization absent)", got)
	}
	if got := brief(Evaluate(pol, d, "")); len(got) != 0 {
		t.Errorf("unknown jurisdiction: %v, want nothing: DE (a possible jurisdiction) grants nothing on these signals", got)
	}
}
