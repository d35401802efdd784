package decision

import (
	"slices"
	"testing"
	"testing/fstest"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

// A tree whose children are an array of the same record, holding a
// referral (a union with null) of a second recursive record.
const recursiveTreeSchema = `{"type": "record", "name": "Node", "namespace": "consentgate.review", "fields": [
  {"name": "subject_id", "type": "string", "data_category": "user.id"},
  {"name": "label", "type": "string"},
  {"name": "email", "type": ["null", "string"], "default": null, "data_category": "user.contact.email"},
  {"name": "children", "type": {"type": "array", "items": "Node"}, "default": []}
]}`

func recursiveSchema(t *testing.T, text string) *avrocodec.Schema {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"s.avsc": {Data: []byte(text)}})
	if err != nil {
		t.Fatal(err)
	}
	return cat.Schemas()[0]
}

// TestPlanEncryptRuleBelowARecursion: an encrypt field rule whose path lies
// below a field the walk did not expand (a recursive type) gives the event
// a step (it is copied, the redaction applies the rule, and the step
// encrypts, so the data key is fetched); a rule for a listed path, or a
// recursive field removed whole, gives none of its own.
func TestPlanEncryptRuleBelowARecursion(t *testing.T) {
	t.Parallel()
	ref := recursiveSchema(t, reviewRecursiveSchema)
	tree := recursiveSchema(t, recursiveTreeSchema)
	enc := func(field string) policy.Treatment {
		return policy.Treatment{Field: field, Action: policy.ActionEncrypt, Encryption: policy.EncryptRandomised}
	}
	tests := []struct {
		name     string
		schema   *avrocodec.Schema
		rules    []policy.Treatment
		excluded []string
		want     []string // the plan's paths
	}{
		{"depth one", ref, []policy.Treatment{enc("referred_by.note")}, nil, []string{"referred_by.note"}},
		{"depth two", ref, []policy.Treatment{enc("referred_by.referred_by.note")}, nil, []string{"referred_by.referred_by.note"}},
		{"depth zero is listed", ref, []policy.Treatment{enc("note")}, nil, []string{"note"}},
		{"two rules, one path once", ref, []policy.Treatment{enc("referred_by.note"), enc("referred_by.note"), enc("referred_by.event_id")}, nil,
			[]string{"referred_by.note", "referred_by.event_id"}},
		{"an unrelated rule", ref, []policy.Treatment{enc("note_x"), {Field: "referred_by.note", Action: policy.ActionRemove}}, nil, nil},
		{"array items", tree, []policy.Treatment{enc("children[].children[].label")}, nil, []string{"children[].children[].label"}},
		{"array items, depth one", tree, []policy.Treatment{enc("children[].label")}, nil, []string{"children[].label"}},
		{"the recursive field encrypted whole", ref, []policy.Treatment{enc("referred_by"), enc("referred_by.note")}, nil, []string{"referred_by"}},
		{"excluded category elsewhere", tree, []policy.Treatment{enc("children[].children[].label")}, []string{"user.contact"},
			[]string{"email", "children[].children[].label"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := policy.Stream{Topic: "compliant.marketing", Unannotated: policy.UnannotatedKeep, Treatments: tt.rules}
			plan := PlanFor(tt.schema, tt.schema, s, tt.excluded)
			if got := plan.Paths(); !slices.Equal(got, tt.want) {
				t.Fatalf("plan %v, want %v", got, tt.want)
			}
			for _, st := range plan {
				if st.Cause != CauseExcluded && (st.Cause != CauseEncrypt || st.Action != policy.ActionEncrypt) {
					t.Errorf("step %s: %s/%s, want encrypt/encrypt", st.Field.Path, st.Action, st.Cause)
				}
			}
			if len(tt.want) > 0 && len(tt.excluded) == 0 && !plan.Encrypts() {
				t.Error("the plan does not say it encrypts: the data key would not be fetched")
			}
		})
	}
}

// TestFieldsOfMarksUnexpanded: the fields whose value holds a record the
// walk already lists above them are marked, and only those.
func TestFieldsOfMarksUnexpanded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		schema string
		want   []string
	}{
		{reviewRecursiveSchema, []string{"referred_by"}},
		{recursiveTreeSchema, []string{"children"}},
	} {
		var got []string
		for _, f := range FieldsOf(recursiveSchema(t, tt.schema), nil).Fields {
			if f.Unexpanded {
				got = append(got, f.Path)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("unexpanded %v, want %v", got, tt.want)
		}
	}
}

// TestPlanMemoFollowsDeeperRules: a rule changed in place, from a listed
// path to one below a recursion, is not served the memoised plan.
func TestPlanMemoFollowsDeeperRules(t *testing.T) {
	t.Parallel()
	ref := recursiveSchema(t, reviewRecursiveSchema)
	rules := []policy.Treatment{{Field: "note_x", Action: policy.ActionEncrypt}}
	s := policy.Stream{Topic: "compliant.marketing", Unannotated: policy.UnannotatedKeep, Treatments: rules}
	if p := PlanFor(ref, ref, s, nil); len(p) != 0 {
		t.Fatalf("plan %v for a rule of no field", p.Paths())
	}
	rules[0].Field = "referred_by.note"
	if p := PlanFor(ref, ref, s, nil); !slices.Equal(p.Paths(), []string{"referred_by.note"}) {
		t.Fatalf("plan %v after the rule changed in place, want [referred_by.note]", p.Paths())
	}
}
