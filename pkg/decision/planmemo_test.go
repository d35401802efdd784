package decision

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
)

// TestPlanMemoMatchesComputed checks the memoised planFields against
// computePlan for the fields of every catalog schema pair, random streams
// (unannotated_fields, field and category rules, encrypt among the
// actions) and random exclusion sets, with plans
// reused for repeated requests and stream rules changed in place after a
// plan was memoised.
func TestPlanMemoMatchesComputed(t *testing.T) {
	t.Parallel()
	cat := catalog(t)
	var carried [][]Field
	for _, w := range cat.Schemas() {
		for _, r := range cat.Versions(w.FullName) {
			carried = append(carried, FieldsOf(w, r).Fields)
		}
	}
	rnd := rand.New(rand.NewPCG(7, 8))
	pick := func(list []string) string { return list[rnd.IntN(len(list))] }
	pats := append([]string{"*", "user", "user.contact.*", "nonsense", ""}, policy.Categories...)
	nonEmpty := 0
	for range 3000 {
		fields := carried[rnd.IntN(len(carried))]
		var paths []string
		for _, f := range fields {
			paths = append(paths, f.Path, f.ReaderPath)
		}
		s := policy.Stream{Unannotated: policy.UnannotatedKeep}
		if rnd.IntN(2) == 0 {
			s.Unannotated = policy.UnannotatedRemove
		}
		for range rnd.IntN(4) {
			tr := policy.Treatment{Field: pick(paths), Action: policy.Actions[rnd.IntN(len(policy.Actions))]}
			if rnd.IntN(3) == 0 { // category rules matter to plans through encrypt
				tr.Field, tr.Category = "", pick(pats)
			}
			s.Treatments = append(s.Treatments, tr)
		}
		var excluded []string
		for range rnd.IntN(3) {
			excluded = append(excluded, pick(pats))
		}
		x := NewExclusions(excluded)
		for i := range 3 {
			if i == 2 && len(s.Treatments) > 0 {
				s.Treatments[0].Action = policy.Actions[rnd.IntN(len(policy.Actions))]
			}
			got, want := planFields(fields, s, x), computePlan(fields, s, x)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("planFields = %+v, computePlan = %+v (stream %+v, excluded %q)", got, want, s, excluded)
			}
			if len(got) > 0 {
				nonEmpty++
			}
		}
	}
	if nonEmpty == 0 {
		t.Fatal("no generated case had a plan")
	}
}

// TestSingleExclusionMatches checks the memoised one-pattern Exclusions
// against a fresh one, for every pattern of the taxonomy and a few that
// are not, asked twice.
func TestSingleExclusionMatches(t *testing.T) {
	t.Parallel()
	pats := append([]string{"*", "", "user.*", "user.contact.*.*", "User.Health", "nonsense"}, policy.Categories...)
	for range 2 {
		for _, p := range pats {
			if got, want := NewExclusions([]string{p}), newExclusions([]string{p}); !reflect.DeepEqual(got, want) {
				t.Errorf("NewExclusions(%q) = %+v, want %+v", p, got, want)
			}
		}
	}
}
