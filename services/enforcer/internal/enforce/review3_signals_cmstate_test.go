package enforce

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReview3ConsentModeDeniedStateEchoedGranted: the customer's Consent
// Mode says ad_user_data=granted, ad_personalization=denied; the policy
// maps only ad_user_data (to marketing). marketing is granted under
// CONSENT, and the enforcer writes both Consent Mode headers from that one
// grant: the Google connector is told ad_personalization=granted, the
// very state the customer refused. A header must never claim consent that
// was not there; ad_personalization must stay denied.
func TestReview3ConsentModeDeniedStateEchoedGranted(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, review3SignalsPolicy)
	review3ApplySignals(t, f, signals.Submission{SubjectID: "s1", CapturedAt: time.Now().Add(-time.Minute).UTC(), Jurisdiction: "DE",
		Signals: []signals.Signal{{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "granted", "ad_personalization": "denied"}}}})
	m := review3Output(t, f, "google.marketing", f.email(t, 1, "e1", "s1"))
	if v, _ := stream.Header(m, HeaderDecision); v != "PASSED" {
		t.Fatalf("decision %s", v)
	}
	if v, _ := stream.Header(m, HeaderAdPersonalization); v != ConsentModeDenied {
		t.Errorf("%s = %q, but the customer's own Consent Mode said ad_personalization=denied", HeaderAdPersonalization, v)
	}
}
