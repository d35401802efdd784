package decision

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
)

func encryptRule(cat string) policy.Treatment {
	return policy.Treatment{Category: cat, Action: policy.ActionEncrypt, Encryption: policy.EncryptRandomised}
}

func TestPlanForEncrypt(t *testing.T) {
	t.Parallel()
	cat := catalog(t)
	purchase, _ := cat.SchemaByName("consentgate.events.Purchase")
	keep := policy.UnannotatedKeep
	type step struct {
		path  string
		cause Cause
	}
	tests := []struct {
		name     string
		stream   policy.Stream
		excluded []string
		want     []step
	}{
		{"category rule: every output, nothing below an encrypted field",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{encryptRule("user.contact.*")}}, nil,
			[]step{{"shipping_address", CauseEncrypt}, {"email", CauseEncrypt}, {"phone", CauseEncrypt}}},
		{"an excluded field is removed, not encrypted",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{encryptRule("user.contact.*")}}, []string{"user.contact.email"},
			[]step{{"shipping_address", CauseEncrypt}, {"email", CauseExcluded}, {"phone", CauseEncrypt}}},
		{"an exclusion inside an encrypted record removes the record",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{encryptRule("user.contact.*")}}, []string{"user.contact.address.city"},
			[]step{{"shipping_address", CauseExcluded}, {"email", CauseEncrypt}, {"phone", CauseEncrypt}}},
		{"an excluded field inside an encrypted one is listed (removed; it decides the event)",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{{Field: "items", Action: policy.ActionEncrypt, Encryption: policy.EncryptRandomised}}}, []string{"user.health"},
			[]step{{"items", CauseEncrypt}, {"items[].health_category", CauseExcluded}}},
		{"an earlier rule that is not encrypt wins",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{{Field: "email", Action: policy.ActionKeep}, {Category: "user.contact.address", Action: policy.ActionMask}, encryptRule("user.contact.*")}}, nil,
			[]step{{"phone", CauseEncrypt}}},
		{"a sub-field rule below a kept record",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{encryptRule("user.contact.address.street"), encryptRule("user.health")}}, nil,
			[]step{{"items[].health_category", CauseEncrypt}, {"shipping_address.street", CauseEncrypt}}},
		{"a field rule on an unannotated field",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{{Field: "currency", Action: policy.ActionEncrypt, Encryption: policy.EncryptDeterministic}}}, nil,
			[]step{{"currency", CauseEncrypt}}},
		{"unannotated remove: an encrypt field rule encrypts",
			policy.Stream{Unannotated: policy.UnannotatedRemove, Treatments: []policy.Treatment{{Field: "event_id", Action: policy.ActionKeep}, {Field: "currency", Action: policy.ActionEncrypt}}}, nil,
			[]step{{"occurred_at", CauseUnannotated}, {"currency", CauseEncrypt}}},
		{"default_treatment encrypt applies only when redacting",
			policy.Stream{Unannotated: keep, DefaultTreatment: policy.ActionEncrypt}, nil, nil},
		{"other actions apply only when redacting",
			policy.Stream{Unannotated: keep, Treatments: []policy.Treatment{{Category: "*", Action: policy.ActionMask}}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan := PlanFor(purchase, purchase, tt.stream, tt.excluded)
			var got []step
			for _, s := range plan {
				got = append(got, step{s.Field.Path, s.Cause})
				if (s.Cause == CauseEncrypt) != (s.Action == policy.ActionEncrypt) {
					t.Errorf("step %s: cause %s with action %s", s.Field.Path, s.Cause, s.Action)
				}
			}
			slices.SortFunc(got, func(a, b step) int { return strings.Compare(a.path, b.path) })
			want := slices.Clone(tt.want)
			slices.SortFunc(want, func(a, b step) int { return strings.Compare(a.path, b.path) })
			if !slices.Equal(got, want) {
				t.Errorf("plan %v, want %v", got, want)
			}
			if plan.Encrypts() != slices.ContainsFunc(tt.want, func(s step) bool { return s.cause == CauseEncrypt }) {
				t.Errorf("Plan.Encrypts() = %v", plan.Encrypts())
			}
		})
	}
}

// TestPlanMemoEncryptRules: the memo must tell apart streams that differ
// only in an encrypt rule (also a category rule, which plans did not
// depend on before), and rules changed in place.
func TestPlanMemoEncryptRules(t *testing.T) {
	t.Parallel()
	cat := catalog(t)
	purchase, _ := cat.SchemaByName("consentgate.events.Purchase")
	fields := FieldsOf(purchase, purchase).Fields
	for _, unannotated := range []string{policy.UnannotatedKeep, policy.UnannotatedRemove} {
		plain := policy.Stream{Unannotated: unannotated, Treatments: []policy.Treatment{{Category: "user.contact.email", Action: policy.ActionMask}}}
		enc := policy.Stream{Unannotated: unannotated, Treatments: []policy.Treatment{encryptRule("user.contact.email")}}
		none := NewExclusions(nil)
		for range 2 {
			p1, p2 := planFields(fields, plain, none), planFields(fields, enc, none)
			if p1.Encrypts() || !p2.Encrypts() || slices.Contains(p1.Paths(), "email") || !slices.Contains(p2.Paths(), "email") {
				t.Fatalf("unannotated %s: plan without encrypt %v, with %v", unannotated, p1.Paths(), p2.Paths())
			}
		}
		plain.Treatments[0].Action = policy.ActionEncrypt // in place
		if p := planFields(fields, plain, none); !p.Encrypts() {
			t.Errorf("unannotated %s: a rule changed in place to encrypt is served the stale plan %v", unannotated, p.Paths())
		}
		plain.Treatments[0].Action = policy.ActionMask
		if p := planFields(fields, plain, none); p.Encrypts() {
			t.Errorf("unannotated %s: a rule changed back is served the stale plan %v", unannotated, p.Paths())
		}
	}
}

// refEncrypted is the every-output rule restated from the policy README:
// for the field's path (the reader's, or the writer's when the reader
// lacks it) and each of its categories (none: ""), the first rule in file
// order that matches decides; the field is encrypted when, for one of its
// categories, that rule is encrypt.
func refEncrypted(s policy.Stream, f Field) bool {
	path := f.ReaderPath
	if path == "" {
		path = f.Path
	}
	cats := f.Categories
	if len(cats) == 0 {
		cats = []string{""}
	}
	for _, c := range cats {
		if refFirstIsEncrypt(s, path, c) {
			return true
		}
	}
	return false
}

func refFirstIsEncrypt(s policy.Stream, path, c string) bool {
	for _, t := range s.Treatments {
		if (t.Field != "" && t.Field == path) || (t.Category != "" && policy.MatchCategory(t.Category, c)) {
			return t.Action == policy.ActionEncrypt
		}
	}
	return false
}

// TestPlanEncryptProperty checks, for random streams with encrypt rules
// over the fields of every catalog schema pair: every field whose first
// matching rule is encrypt is in the plan as an encrypt step, or lies in
// (or is) a field removed or encrypted whole; no other field is an encrypt
// step; and a Passed decision for such fields never forwards the bytes.
func TestPlanEncryptProperty(t *testing.T) {
	t.Parallel()
	cat := catalog(t)
	type pair struct {
		schema string
		fields []Field
	}
	var pairs []pair
	for _, w := range cat.Schemas() {
		for _, r := range cat.Versions(w.FullName) {
			pairs = append(pairs, pair{r.FullName, FieldsOf(w, r).Fields})
		}
	}
	rnd := rand.New(rand.NewPCG(15, 16))
	pats := append([]string{"*", "user", "user.contact.*", "user.device.*"}, policy.Categories...)
	pol, err := policy.Parse([]byte("purposes:\n  - id: p\nstreams:\n  - purposes: [p]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_800_000_000_000)
	encrypted := 0
	for range 3000 {
		pr := pairs[rnd.IntN(len(pairs))]
		var paths []string
		for _, f := range pr.fields {
			paths = append(paths, f.Path)
			if f.ReaderPath != "" {
				paths = append(paths, f.ReaderPath)
			}
		}
		s := policy.Stream{Topic: "compliant.p", Purposes: []string{"p"}, Unannotated: policy.UnannotatedKeep, Excluded: policy.ExcludedRemove}
		if rnd.IntN(3) == 0 {
			s.Unannotated = policy.UnannotatedRemove
		}
		for range 1 + rnd.IntN(4) {
			tr := policy.Treatment{Action: policy.Actions[rnd.IntN(len(policy.Actions))]}
			if rnd.IntN(3) > 0 {
				tr.Action = policy.ActionEncrypt
			}
			if rnd.IntN(2) == 0 {
				tr.Category = pats[rnd.IntN(len(pats))]
			} else {
				tr.Field = paths[rnd.IntN(len(paths))]
			}
			s.Treatments = append(s.Treatments, tr)
		}
		var excluded []string
		if rnd.IntN(3) == 0 {
			excluded = []string{pats[rnd.IntN(len(pats))]}
		}
		plan := planFields(pr.fields, s, NewExclusions(excluded))
		steps := map[string]Step{}
		var whole []string
		for _, st := range plan {
			steps[st.Field.Path] = st
			if st.Action == policy.ActionRemove || st.Action == policy.ActionEncrypt {
				whole = append(whole, st.Field.Path)
			}
		}
		for _, f := range pr.fields {
			want := refEncrypted(s, f)
			st, listed := steps[f.Path]
			switch {
			case listed && st.Cause == CauseEncrypt && !want:
				t.Fatalf("%s: field %s encrypted, its first matching rule is not encrypt (rules %+v)", pr.schema, f.Path, s.Treatments)
			case !want:
			case listed && st.Cause == CauseEncrypt:
				encrypted++
			case listed && st.Cause == CauseExcluded:
			case below(f.Path, whole):
			default:
				t.Fatalf("%s: field %s has an encrypt rule first, plan %+v (rules %+v, excluded %q)", pr.schema, f.Path, plan, s.Treatments, excluded)
			}
		}
		if plan.Encrypts() {
			st := &consent.State{SubjectID: "s", Purposes: map[string]consent.PurposeState{"p": {Status: consent.StatusGranted, ChangeID: "g",
				CapturedAt: now.Add(-time.Hour), LegalBasis: consent.BasisConsent}}}
			d := Decide(pol, s, Input{Schema: pr.schema, Fields: pr.fields, State: st, Now: now})
			if d.Outcome != Passed || d.Treatment != TreatSettings || !d.Plan.Encrypts() || !NeedsDataKey(d, s) {
				t.Fatalf("%s: a passed event with fields to encrypt: %s treatment %d plan %v", pr.schema, d.Outcome, d.Treatment, d.Plan.Paths())
			}
		}
	}
	if encrypted == 0 {
		t.Fatal("no generated case encrypted a field")
	}
}

func TestNeedsDataKey(t *testing.T) {
	t.Parallel()
	enc := policy.Stream{Treatments: []policy.Treatment{encryptRule("user.contact.email")}}
	def := policy.Stream{DefaultTreatment: policy.ActionEncrypt}
	plain := policy.Stream{}
	encPlan := Plan{{Field: Field{Path: "email"}, Action: policy.ActionEncrypt, Cause: CauseEncrypt}}
	removePlan := Plan{{Field: Field{Path: "email"}, Action: policy.ActionRemove, Cause: CauseExcluded}}
	tests := []struct {
		name string
		d    Decision
		s    policy.Stream
		want bool
	}{
		{"dropped", Decision{Outcome: Dropped}, enc, false},
		{"redact with encrypt rules", Decision{Outcome: Redacted, Treatment: TreatRedact}, enc, true},
		{"redact with encrypt default", Decision{Outcome: Redacted, Treatment: TreatRedact}, def, true},
		{"redact without encrypt", Decision{Outcome: Redacted, Treatment: TreatRedact}, plain, false},
		{"passed, plan encrypts", Decision{Outcome: Passed, Treatment: TreatSettings, Plan: encPlan}, enc, true},
		{"passed, nothing to encrypt", Decision{Outcome: Passed}, enc, false},
		{"excluded removed only", Decision{Outcome: Redacted, Treatment: TreatRemoveExcluded, Plan: removePlan}, enc, false},
	}
	for _, tt := range tests {
		if got := NeedsDataKey(tt.d, tt.s); got != tt.want {
			t.Errorf("%s: NeedsDataKey = %v, want %v", tt.name, got, tt.want)
		}
	}
}
