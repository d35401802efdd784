package decision

import (
	"testing"
	"testing/fstest"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

const reviewRecursiveSchema = `{"type": "record", "name": "Referral", "namespace": "consentgate.review", "fields": [
  {"name": "event_id", "type": "string"},
  {"name": "subject_id", "type": "string", "data_category": "user.id"},
  {"name": "note", "type": "string"},
  {"name": "referred_by", "type": ["null", "Referral"], "default": null}
]}`

// A field rule "referred_by.note: encrypt" names a field that every event
// of this (recursive) schema can carry. FieldsOf walks a recursive type
// once, so the plan never lists referred_by.note: a passed event gets an
// empty Plan and is forwarded byte for byte, the note of the referrer in
// clear on a stream whose policy says to encrypt it (on every output).
func TestReviewShredEncryptRuleInsideARecursiveRecord(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"referral.avsc": {Data: []byte(reviewRecursiveSchema)}})
	if err != nil {
		t.Fatal(err)
	}
	s := cat.Schemas()[0]
	stream := policy.Stream{Topic: "compliant.marketing", Unannotated: policy.UnannotatedKeep,
		Treatments: []policy.Treatment{{Field: "referred_by.note", Action: policy.ActionEncrypt, Encryption: policy.EncryptRandomised}}}
	plan := PlanFor(s, s, stream, nil)
	for _, st := range plan {
		if st.Field.Path == "referred_by" || st.Field.Path == "referred_by.note" {
			return
		}
	}
	t.Fatalf("plan %v lists neither referred_by nor referred_by.note: a passed event is forwarded with the referrer's note in clear (Plan.Encrypts %v)", plan.Paths(), plan.Encrypts())
}
