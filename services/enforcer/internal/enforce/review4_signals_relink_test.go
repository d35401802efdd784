package enforce

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReview4ExcludedSubjectIDRelinkedByEventHeaders shows that the third
// review's relink fix (change ids withheld on a copy that does not carry
// the subject id as it came in) closes one link and leaves two of the same
// kind: the copy on compliant.both, whose subject_id the grant excluded
// (removed, no key), still carries consentgate.event_id and
// consentgate.source.topic/partition/offset. The audit record of that very
// decision (schemas/audit_record.v2.avsc) names event_id, source_topic,
// source_partition and source_offset next to subject_id, so one lookup in
// the audit topic by either header gives the subject back, exactly the
// argument that withholds the change ids (which are at least shared by
// many records; the event id and the offset are unique to this one). The
// coordinates also point at the input record on customer.events, which
// carries the subject id. In this fixture the value itself keeps the event
// id too (its event_id field is not treated), so the record is relinkable
// whatever its headers say: the change-id withholding only helps if
// event_id and the source coordinates are withheld as well (headers here;
// the event_id field is the policy's to treat, or the enforcer's to refuse
// for a stream that removes the subject id). How serious: a removal of the
// subject id the customer's grant asked for is undone by anyone who can
// read the audit topic (compliance tooling) or the input topic; design
// level, the same argument as review3's relink finding, so fix both or
// neither.
func TestReview4ExcludedSubjectIDRelinkedByEventHeaders(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	f.change(t, "c-m-4", "s4", "marketing", consent.ActionGrant, consent.BasisConsent, "user.id")
	f.change(t, "c-a-4", "s4", "analytics", consent.ActionGrant, consent.BasisConsent)
	out, err := f.e.Process(context.Background(), []kafka.Message{f.email(t, 1, "e4-unique", "s4")})
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
	if len(m.Key) != 0 || strings.Contains(string(m.Value), "s4") {
		t.Fatalf("the subject id was not removed (key %q): the case does not show the gap", m.Key)
	}
	if ids, _ := stream.Header(*m, HeaderConsentChangeIDs); strings.Contains(ids, "c-m-4") {
		t.Fatalf("setup: change ids %q not withheld (review3's finding, fixed)", ids)
	}
	inValue := strings.Contains(string(m.Value), "e4-unique")
	for _, k := range []string{HeaderEventID, HeaderSourceTopic, HeaderSourcePart, HeaderSourceOffset} {
		if v, ok := stream.Header(*m, k); ok {
			t.Errorf("a record published without its subject id carries %s=%q, which the audit record of the decision ties to subject_id (event id also in the value: %v)", k, v, inValue)
		}
	}
}
