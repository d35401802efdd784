package explain

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

const recursiveReferral = `{"type": "record", "name": "Referral", "namespace": "consentgate.review", "fields": [
  {"name": "event_id", "type": "string"},
  {"name": "subject_id", "type": "string", "data_category": "user.id"},
  {"name": "note", "type": "string"},
  {"name": "rank", "type": "int"},
  {"name": "referred_by", "type": ["null", "Referral"], "default": null}
]}`

// TestCheckFieldRuleInsideARecursiveRecord: a field rule for a path at a
// depth of a recursive type that avrocodec.Schema.Fields does not list is
// a field of the schema (the redaction applies the rule there): it is
// accepted, and an encrypt rule there is checked against the field's type.
func TestCheckFieldRuleInsideARecursiveRecord(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"referral.avsc": {Data: []byte(recursiveReferral)}})
	if err != nil {
		t.Fatal(err)
	}
	rule := func(field string) string {
		return checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.review.Referral]
    treatments:
      - field: ` + field + `
        action: encrypt
`
	}
	for _, tt := range []struct {
		field string
		want  string // the one error, "" for none
	}{
		{"referred_by.note", ""},
		{"referred_by.referred_by.note", ""},
		{"referred_by.rank", "the encrypt rule (line 9) matches field referred_by.rank of consentgate.review.Referral version 1, of type int, which cannot hold a ciphertext"},
		{"referred_by.referred_by.rank", "matches field referred_by.referred_by.rank of consentgate.review.Referral version 1, of type int"},
		{"referred_by.nope", "no schema the stream accepts has the field referred_by.nope, so the rule never applies"},
		{"referred_by[].note", "no schema the stream accepts has the field referred_by[].note"},
	} {
		res := Check([]byte(rule(tt.field)), "p.yaml", cat, true)
		var errs []string
		for _, e := range res.Errors {
			errs = append(errs, e.Error())
		}
		switch {
		case tt.want == "" && len(errs) != 0:
			t.Errorf("%s: errors %q, want none", tt.field, errs)
		case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0], tt.want)):
			t.Errorf("%s: errors %q, want one with %q", tt.field, errs, tt.want)
		}
	}
}
