package enforce

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
)

// review3SignalsPolicy: an opt-out purpose sale decided by the USP
// string, marketing decided by Consent Mode's ad_user_data only (its
// ad_personalization is left unmapped, which the policy allows), each on
// a Google stream of its own.
const review3SignalsPolicy = `
purposes:
  - id: marketing
  - id: sale
    opt_out: true
streams:
  - topic: google.sale
    purposes: [sale]
    google_consent_mode: true
  - topic: google.marketing
    purposes: [marketing]
    google_consent_mode: true
signals:
  rules:
    - signal: gpp.uspv1.sale_opt_out
      purposes: [sale]
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
`

// review3ApplySignals stores the changes consent-sync makes of sub, as
// it stores them (signals.Changes, then the store).
func review3ApplySignals(t *testing.T, f *fixture, sub signals.Submission) {
	t.Helper()
	changes, err := signals.Changes(f.e.policy, sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 {
		t.Fatal("the signals make no change")
	}
	for _, c := range changes {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Apply(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

func review3Output(t *testing.T, f *fixture, topic string, in kafka.Message) kafka.Message {
	t.Helper()
	out, err := f.e.Process(context.Background(), []kafka.Message{in})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out {
		if m.Topic == topic {
			return m
		}
	}
	t.Fatalf("no record on %s", topic)
	return kafka.Message{}
}

// TestReview3SignalNoOptOutIsNotConsentMode: a US Privacy string saying
// "did not opt out of sale" (1YNN) is no consent, only the absence of an
// objection; the engine records it as a GRANT of the opt-out purpose sale
// under CONSENT (grantBasis), and the enforcer, which reads only the legal
// basis, then publishes sale=CONSENT and Consent Mode ad_user_data /
// ad_personalization "granted" to the Google connector. The product rule
// (and the README: "an opt-out purpose never objected to ... give denied")
// says an opt-out not exercised is not consent: Consent Mode must say
// denied, and the legal basis must not claim CONSENT.
func TestReview3SignalNoOptOutIsNotConsentMode(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, review3SignalsPolicy)
	// Since pkg/signals' fix at the source ("did not opt out" grants
	// nothing), the string makes no change at all: sale stays never asked,
	// an opt-out not objected to. The headers must still say so.
	changes, err := signals.Changes(f.e.policy, signals.Submission{SubjectID: "s1", CapturedAt: time.Now().Add(-time.Minute).UTC(), Jurisdiction: "US-CA",
		Signals: []signals.Signal{{Type: signals.TypeUSP, Value: "1YNN"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Fatalf("a USP \"did not opt out\" makes changes %+v", changes)
	}
	m := review3Output(t, f, "google.sale", f.email(t, 1, "e1", "s1"))
	basis, _ := stream.Header(m, HeaderConsentLegalBasis)
	ud, _ := stream.Header(m, HeaderAdUserData)
	ap, _ := stream.Header(m, HeaderAdPersonalization)
	if ud != ConsentModeDenied || ap != ConsentModeDenied {
		t.Errorf("a USP \"did not opt out\" published as Consent Mode ad_user_data=%s ad_personalization=%s (legal basis %q): not opting out is not consent", ud, ap, basis)
	}
	if basis == "sale="+policy.LegalBasisConsent {
		t.Errorf("legal basis %q: the customer never consented to sale, they did not object", basis)
	}
}
