package decision

import (
	"slices"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/schemas"
)

func catalog(t *testing.T) *avrocodec.Catalog {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestFieldsOfPairsWriterAndReader(t *testing.T) {
	t.Parallel()
	cat := catalog(t)
	v1, _ := cat.Version("consentgate.events.PageView", 1)
	v2, _ := cat.Version("consentgate.events.PageView", 2)
	c := FieldsOf(v1, v2)
	byPath := map[string]Field{}
	for _, f := range c.Fields {
		byPath[f.Path] = f
	}
	if f := byPath["page_title"]; f.ReaderPath != "title" || !slices.Equal(f.Categories, []string{"user.behavior.browsing"}) {
		t.Errorf("page_title pairs as %+v, want reader path title (alias)", f)
	}
	if f := byPath["geo.city"]; f.ReaderPath != "geo.city" || len(f.Categories) != 1 {
		t.Errorf("geo.city pairs as %+v", f)
	}
	if _, ok := byPath["referrer"]; ok {
		t.Error("referrer (reader only) listed as carried by version 1 bytes")
	}
	if len(c.WriterOnly) != 0 {
		t.Errorf("writer-only fields %v, want none", c.WriterOnly)
	}
	back := FieldsOf(v2, v1)
	for _, p := range []string{"referrer", "consent_banner_shown", "device_type"} {
		if !slices.Contains(back.WriterOnly, p) {
			t.Errorf("version 2 read as 1: %s not writer-only (%v)", p, back.WriterOnly)
		}
	}
	if FieldsOf(v1, v2) != c {
		t.Error("FieldsOf is not cached")
	}
}

func TestPlanFor(t *testing.T) {
	t.Parallel()
	cat := catalog(t)
	purchase, _ := cat.SchemaByName("consentgate.events.Purchase")
	keepID := policy.Treatment{Field: "event_id", Action: policy.ActionKeep}
	tests := []struct {
		name     string
		stream   policy.Stream
		excluded []string
		want     []string
	}{
		{"nothing to do", policy.Stream{Unannotated: policy.UnannotatedKeep}, nil, nil},
		{"excluded wildcard", policy.Stream{Unannotated: policy.UnannotatedKeep}, []string{"user.health.*"}, []string{"items[].health_category"}},
		{"sub-category takes its parent field", policy.Stream{Unannotated: policy.UnannotatedKeep}, []string{"user.contact.address.city"},
			[]string{"shipping_address"}},
		{"unannotated remove", policy.Stream{Unannotated: policy.UnannotatedRemove}, nil, []string{"event_id", "occurred_at", "currency"}},
		{"unannotated remove, a field rule keeps", policy.Stream{Unannotated: policy.UnannotatedRemove, Treatments: []policy.Treatment{keepID}}, nil,
			[]string{"occurred_at", "currency"}},
		{"both", policy.Stream{Unannotated: policy.UnannotatedRemove, Treatments: []policy.Treatment{keepID}}, []string{"user.financial"},
			[]string{"occurred_at", "currency", "payment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := PlanFor(purchase, purchase, tt.stream, tt.excluded)
			if !slices.Equal(got.Paths(), tt.want) {
				t.Errorf("plan %v, want %v", got.Paths(), tt.want)
			}
		})
	}
}

func TestDecidePlans(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse([]byte(`
purposes:
  - id: p
streams:
  - topic: keep
    purposes: [p]
  - topic: strip
    purposes: [p]
    unannotated_fields: remove
  - topic: strict
    purposes: [p]
    excluded_categories: drop
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog(t)
	purchase, _ := cat.SchemaByName("consentgate.events.Purchase")
	now := time.UnixMilli(1_800_000_000_000)
	st := func(excluded ...string) *consent.State {
		return &consent.State{SubjectID: "s", Purposes: map[string]consent.PurposeState{"p": {Status: consent.StatusGranted, ChangeID: "g",
			CapturedAt: now.Add(-time.Hour), LegalBasis: consent.BasisConsent, ExcludedCategories: excluded}}}
	}
	in := func(s *consent.State) Input {
		return Input{Schema: purchase.FullName, Fields: FieldsOf(purchase, purchase).Fields, State: s, Now: now}
	}
	tests := []struct {
		stream, pattern string
		outcome         Outcome
		treat           Treatment
		plan            int
	}{
		{"keep", "", Passed, TreatNone, 0},
		{"strip", "", Passed, TreatSettings, 3},
		{"keep", "user.health.*", Redacted, TreatRemoveExcluded, 1},
		{"strict", "user.health.*", Dropped, TreatNone, 0},
		{"strict", "user.contact.address.city", Dropped, TreatNone, 0},
		{"strip", "user.health", Redacted, TreatRemoveExcluded, 4},
		{"keep", "user.demographic.age", Passed, TreatNone, 0},
	}
	for _, tt := range tests {
		s, _ := pol.Stream(tt.stream)
		var excl []string
		if tt.pattern != "" {
			excl = []string{tt.pattern}
		}
		d := Decide(pol, s, in(st(excl...)))
		if d.Outcome != tt.outcome || d.Treatment != tt.treat || len(d.Plan) != tt.plan {
			t.Errorf("%s excluding %q: %s treatment %d plan %v, want %s %d with %d steps", tt.stream, tt.pattern, d.Outcome, d.Treatment, d.Plan.Paths(), tt.outcome, tt.treat, tt.plan)
		}
	}
}
