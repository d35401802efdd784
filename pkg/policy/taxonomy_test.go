package policy_test

import (
	"slices"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/schemas"
)

// TestSchemasUseTheTaxonomy keeps the schemas' data_category annotations and
// the policy's category list in step: a category the policy does not know
// could never be given a treatment.
func TestSchemasUseTheTaxonomy(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, s := range cat.Schemas() {
		for path, c := range s.Annotations {
			seen++
			if !slices.Contains(policy.Categories, c) {
				t.Errorf("%s field %s has category %q, which policy.Categories lacks", s.FullName, path, c)
			}
		}
	}
	if seen < 20 {
		t.Errorf("only %d annotated fields in the schemas; the catalog did not load them", seen)
	}
}
