package enforce

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReview3ExcludedSubjectIDNotRelinkedByChangeIDs: the customer's grant
// of marketing excludes user.id, so the record on compliant.both is
// published with its subject_id removed (and no key). Yet its
// consentgate.consent.change_ids header names the grants that allowed it,
// "marketing=c-m-9,analytics=c-a-9": ids unique to this customer's
// changes, carried by every record of the customer since, and named by the
// customer's audit records (keyed by the subject id). The header thus
// links every such record back to the customer: the identifier the grant
// removed comes back as a pseudonymous one. The withholding rule (an id
// that contains the subject id) does not catch it, since the ids do not
// hold the subject id literally. Headers must not carry what identifies
// the subject on a record from which the subject id was removed (the
// redacted-without-consent case already lists no change).
func TestReview3ExcludedSubjectIDNotRelinkedByChangeIDs(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	f.change(t, "c-m-9", "s9", "marketing", consent.ActionGrant, consent.BasisConsent, "user.id")
	f.change(t, "c-a-9", "s9", "analytics", consent.ActionGrant, consent.BasisConsent)
	out, err := f.e.Process(context.Background(), []kafka.Message{f.email(t, 1, "e9", "s9")})
	if err != nil {
		t.Fatal(err)
	}
	var m *kafka.Message
	for i := range out {
		if out[i].Topic == "compliant.both" {
			m = &out[i]
		}
	}
	if m == nil {
		t.Fatal("no record on compliant.both")
	}
	if v, _ := stream.Header(*m, HeaderConsentRedaction); v != RedactionExcludedCategories {
		t.Fatalf("redaction %q", v)
	}
	if len(m.Key) != 0 || strings.Contains(string(m.Value), "s9") {
		t.Fatalf("the subject id was not removed (key %q): the case does not show the gap", m.Key)
	}
	if ids, _ := stream.Header(*m, HeaderConsentChangeIDs); strings.Contains(ids, "c-m-9") || strings.Contains(ids, "c-a-9") {
		t.Errorf("a record published without its subject id carries the subject's change ids %q, which the audit record ties to the subject", ids)
	}
}
