package enforce

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
)

// TestReview4ConsentHeadersSpoofedByCase shows that the third review's
// spoofing fix (EnforcerHeader drops input headers in the "consentgate."
// namespace from forwarded outputs) matches the namespace byte for byte:
// a producer that sets "ConsentGate.consent_mode.ad_user_data: granted"
// (or "CONSENTGATE.consent.legal_basis") gets it through to the purpose
// stream, next to the enforcer's own. A reader that matches header keys
// exactly is not fooled, but a sink that folds case (an HTTP sink turning
// Kafka headers into HTTP headers, whose names are case-insensitive; a
// connector that lower-cases keys) then sees the header twice, the forged
// "granted" first, where the enforcer decided "denied". How serious
// depends on the sinks; dropping the namespace case-insensitively costs
// nothing.
func TestReview4ConsentHeadersSpoofedByCase(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	f.change(t, "c-m", "s1", "marketing", consent.ActionGrant, consent.BasisConsent)
	f.change(t, "c-a", "s1", "analytics", consent.ActionGrant, consent.BasisLegitimateInterest)
	in := f.email(t, 1, "e1", "s1")
	in.Headers = append(in.Headers,
		kafka.Header{Key: "ConsentGate.consent_mode.ad_user_data", Value: []byte(ConsentModeGranted)},
		kafka.Header{Key: "CONSENTGATE.consent.legal_basis", Value: []byte("analytics=CONSENT")})
	out, err := f.e.Process(context.Background(), []kafka.Message{in})
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, m := range out {
		if m.Topic != "google.analytics" {
			continue
		}
		seen = true
		n := map[string]int{}
		first := map[string]string{}
		for _, h := range m.Headers {
			k := strings.ToLower(h.Key)
			if n[k] == 0 {
				first[k] = string(h.Value)
			}
			n[k]++
		}
		for _, k := range []string{HeaderConsentLegalBasis, HeaderAdUserData} {
			if n[k] != 1 {
				t.Errorf("header %s appears %d times on the published record when keys are read case-insensitively; the first says %q", k, n[k], first[k])
			}
		}
	}
	if !seen {
		t.Fatal("no record on google.analytics")
	}
}
