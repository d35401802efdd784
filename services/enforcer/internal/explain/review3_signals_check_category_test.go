package explain

import (
	"strings"
	"testing"
)

// TestReview3CheckSignalCategoryNoSchemaCarries: check warns when a
// stream's category rule matches no field of the schemas the stream
// accepts ("so the rule never applies": the example's user.location.precise
// rule of compliant.analytics), but says nothing of the signals rules that
// exclude the same category. In the dev stack's example,
// tcf.special_feature.1 and gpp.usnat.sensitive_data_processing.8 exclude
// user.location.precise, which no schema of the catalog carries (and no
// broader user.location field exists): the exclusion they put on a grant
// removes nothing from any event, so the customer's refusal of precise
// geolocation maps to nothing, and check calls the signals section clean.
// The same warning must cover signals category rules.
func TestReview3CheckSignalCategoryNoSchemaCarries(t *testing.T) {
	t.Parallel()
	res := Check(repoFile(t, "pkg/policy/testdata/example.yaml"), "p.yaml", testCatalog(t), true)
	if !res.OK() {
		t.Fatalf("errors %v", res.Errors)
	}
	var streamWarned bool
	lines := map[int]bool{}
	for _, w := range res.Warnings {
		if strings.Contains(w.Problem, "user.location.precise") && strings.Contains(w.Problem, "never applies") {
			streamWarned = true
		}
		if strings.Contains(w.Problem, "user.location.precise") {
			lines[w.Line] = true
		}
	}
	if !streamWarned {
		t.Fatal("reference: the stream rule on user.location.precise is no longer warned about")
	}
	for _, line := range []int{89, 102} {
		if !lines[line] {
			t.Errorf("no warning for the signals rule at line %d, whose category user.location.precise no schema carries", line)
		}
	}
}
