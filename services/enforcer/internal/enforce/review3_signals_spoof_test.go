package enforce

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReview3ConsentHeadersNotSpoofedByProducer: a passed record whose
// bytes are forwarded keeps the input's headers, and the enforcer only
// appends its consent context after them. A producer (or anything
// upstream of customer.events) that sets consentgate.consent.* or
// consentgate.consent_mode.* headers on its event gets them through to the
// purpose stream, ahead of the enforcer's own: the output then carries two
// contradicting values of the same header, and a reader that takes the
// first one (stream.Header does; so do many connectors) reads the
// producer's claim. Here analytics rests on LEGITIMATE_INTEREST, so the
// enforcer says Consent Mode "denied", yet the record's first
// ad_user_data header says "granted" and its first legal_basis header
// says CONSENT. The consent headers must be exactly the enforcer's: each
// once, with the enforcer's value (input headers of these names dropped
// or the record refused).
func TestReview3ConsentHeadersNotSpoofedByProducer(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	f.change(t, "c-m", "s1", "marketing", consent.ActionGrant, consent.BasisConsent)
	f.change(t, "c-a", "s1", "analytics", consent.ActionGrant, consent.BasisLegitimateInterest)
	in := f.email(t, 1, "e1", "s1")
	in.Headers = append(in.Headers,
		kafka.Header{Key: HeaderConsentLegalBasis, Value: []byte("analytics=CONSENT")},
		kafka.Header{Key: HeaderConsentChangeIDs, Value: []byte("analytics=s1-forged")},
		kafka.Header{Key: HeaderAdUserData, Value: []byte(ConsentModeGranted)},
		kafka.Header{Key: HeaderAdPersonalization, Value: []byte(ConsentModeGranted)})
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
		for _, h := range m.Headers {
			n[h.Key]++
		}
		for _, k := range []string{HeaderConsentPurposes, HeaderConsentLegalBasis, HeaderConsentChangeIDs, HeaderAdUserData, HeaderAdPersonalization} {
			if n[k] != 1 {
				t.Errorf("header %s appears %d times on the published record", k, n[k])
			}
		}
		if v, _ := stream.Header(m, HeaderAdUserData); v != ConsentModeDenied {
			t.Errorf("first %s = %q: analytics rests on LEGITIMATE_INTEREST, the enforcer decided denied", HeaderAdUserData, v)
		}
		if v, _ := stream.Header(m, HeaderConsentLegalBasis); v != "analytics=LEGITIMATE_INTEREST" {
			t.Errorf("first %s = %q, want analytics=LEGITIMATE_INTEREST", HeaderConsentLegalBasis, v)
		}
		if v, _ := stream.Header(m, HeaderConsentChangeIDs); v != "analytics=c-a" {
			t.Errorf("first %s = %q (the audit record says c-a)", HeaderConsentChangeIDs, v)
		}
	}
	if !seen {
		t.Fatal("no record on google.analytics")
	}
}
