package decision

import (
	"slices"
	"strings"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

// Cause says why a Step treats a field.
type Cause string

// Causes of a Step.
const (
	// CauseExcluded: the field has a category the grant excludes.
	CauseExcluded Cause = "excluded_category"
	// CauseUnannotated: the field has no category and the stream's
	// unannotated_fields is remove.
	CauseUnannotated Cause = "unannotated_fields"
	// CauseEncrypt: the stream's first matching rule for the field is
	// encrypt, which applies on every output (policy.Stream.EncryptionFor).
	CauseEncrypt Cause = "encrypt"
)

// Step is one field of the writer's bytes that must change before the
// event may be published on a stream.
type Step struct {
	Field Field
	// Action is remove for an excluded field; encrypt for CauseEncrypt;
	// for an unannotated field the action of the stream's field rule for
	// its path, else remove.
	Action policy.Action
	Cause  Cause
	// Pattern is the exclusion that covers the field (CauseExcluded).
	Pattern string
}

// Plan lists the fields of an event's bytes that a stream's settings and a
// grant's exclusions require to change, outermost first: a field below a
// removed one is not listed, and below an encrypted one only a field of an
// excluded category is (removed, never encrypted: it decides the event as
// any excluded field does). An empty Plan means the bytes may be forwarded
// as they are.
type Plan []Step

// Excluded reports whether a step removes a field of an excluded category.
func (p Plan) Excluded() bool {
	for _, s := range p {
		if s.Cause == CauseExcluded {
			return true
		}
	}
	return false
}

// Encrypts reports whether a step encrypts a field (CauseEncrypt): the
// output then needs the subject's data key.
func (p Plan) Encrypts() bool {
	for _, s := range p {
		if s.Cause == CauseEncrypt {
			return true
		}
	}
	return false
}

// Paths returns the writer paths of the steps.
func (p Plan) Paths() []string {
	out := make([]string, len(p))
	for i, s := range p {
		out[i] = s.Field.Path
	}
	return out
}

// PlanFor returns what must change in the bytes of an event written with
// writer (and read as reader) before they may be published on stream s,
// for a grant that excludes the category patterns excluded (see Excludes):
//
//   - every field that either schema annotates with an excluded category
//     is removed;
//   - every other field whose first matching rule of s is encrypt
//     (EncryptedOnEveryOutput) is encrypted;
//   - when s.Unannotated is remove, every field that neither schema
//     annotates gets the stream's field rule for its path (a "keep" rule
//     leaves it, and it is not listed), else it is removed;
//   - an encrypt field rule for a path below an Unexpanded field (a depth
//     of a recursive type the walk does not list) gets a step of its own
//     (deeperEncrypts): the event is copied, and the copy's redaction,
//     which follows the value to every depth, applies the rule.
//
// It judges the writer's fields, which is what the bytes carry, not only
// the reader's. It is the function behind Decide's Plan. The Plan is
// computed once per (fields, stream rules, exclusions) and shared: callers
// must not modify it.
func PlanFor(writer, reader *avrocodec.Schema, s policy.Stream, excluded []string) Plan {
	return planFields(FieldsOf(writer, reader).Fields, s, NewExclusions(excluded))
}

// computePlan is planFields without the memo (planmemo.go): it walks the
// fields.
func computePlan(fields []Field, s policy.Stream, x Exclusions) Plan {
	var (
		plan      Plan
		removed   []string // writer paths removed whole
		encrypted []string // writer paths encrypted whole
	)
	for _, f := range fields {
		if below(f.Path, removed) {
			continue
		}
		if below(f.Path, encrypted) {
			// Inside an encrypted field only an exclusion still
			// counts: the field is removed, never encrypted, and it
			// decides the event (excluded_categories: drop drops it).
			if p, ok := x.CoversAny(f.Categories); ok {
				plan = append(plan, Step{Field: f, Action: policy.ActionRemove, Cause: CauseExcluded, Pattern: p})
				removed = append(removed, f.Path)
			}
			continue
		}
		if step, ok := fieldStep(f, s, x); ok {
			switch step.Action {
			case policy.ActionRemove:
				removed = append(removed, f.Path)
			case policy.ActionEncrypt:
				encrypted = append(encrypted, f.Path)
			}
			plan = append(plan, step)
		}
		if f.Unexpanded && !slices.Contains(removed, f.Path) && !slices.Contains(encrypted, f.Path) {
			plan = append(plan, deeperEncrypts(s, f)...)
		}
	}
	return plan
}

// fieldStep is the step of field f, if it needs one.
func fieldStep(f Field, s policy.Stream, x Exclusions) (Step, bool) {
	step := Step{Field: f}
	if p, ok := x.CoversAny(f.Categories); ok {
		step.Action, step.Cause, step.Pattern = policy.ActionRemove, CauseExcluded, p
	} else if EncryptedOnEveryOutput(s, f) {
		step.Action, step.Cause = policy.ActionEncrypt, CauseEncrypt
	} else if !f.Annotated() && s.Unannotated == policy.UnannotatedRemove {
		a := UnannotatedAction(s, f)
		if a == policy.ActionKeep {
			return Step{}, false
		}
		step.Action, step.Cause = a, CauseUnannotated
	} else {
		return Step{}, false
	}
	return step, true
}

// deeperEncrypts returns a step for every encrypt field rule of s whose
// path lies below the Unexpanded field f (by its reader path, or its
// writer path when the reader lacks it, as redaction matches field rules):
// a field at a depth of a recursive type that the walk does not list. The
// step's field is the rule's (ReaderPath the rule's path when f has one;
// Path the rule's path re-rooted at f's writer path, the names below f
// being the reader's; no categories: the walk does not know the field).
// The rule may not be the first to match that field (a category rule
// before it): the step fails closed, the copy's redaction decides.
func deeperEncrypts(s policy.Stream, f Field) Plan {
	base := f.ReaderPath
	if base == "" {
		base = f.Path
	}
	var out Plan
	for _, t := range s.Treatments {
		if t.Action != policy.ActionEncrypt || t.Field == "" || !below(t.Field, []string{base}) {
			continue
		}
		g := Field{Path: f.Path + t.Field[len(base):]}
		if f.ReaderPath != "" {
			g.ReaderPath = t.Field
		}
		if slices.ContainsFunc(out, func(st Step) bool { return st.Field.Path == g.Path }) {
			continue
		}
		out = append(out, Step{Field: g, Action: policy.ActionEncrypt, Cause: CauseEncrypt})
	}
	return out
}

// UnannotatedAction is the treatment of an unannotated field on a stream
// whose unannotated_fields is remove, on every output of the stream: the
// action of a field rule for its path (reader or writer path), else
// remove. Actions other than keep and the rewriting ones count as remove.
func UnannotatedAction(s policy.Stream, f Field) policy.Action {
	for _, t := range s.Treatments {
		if t.Field != "" && (t.Field == f.ReaderPath || (f.ReaderPath == "" && t.Field == f.Path)) {
			return t.Action
		}
	}
	return policy.ActionRemove
}

// EncryptedOnEveryOutput reports whether field f is encrypted on every
// output of stream s: the first rule of s that matches it (by its reader
// path, or its writer path when the reader lacks it, as redaction matches
// field rules; by each of its categories) is encrypt. A field judged by two
// categories is encrypted when either one's first matching rule is encrypt
// (fail closed). Exclusions are not looked at: an excluded field is
// removed, never encrypted (PlanFor checks them first).
func EncryptedOnEveryOutput(s policy.Stream, f Field) bool {
	path := f.ReaderPath
	if path == "" {
		path = f.Path
	}
	if len(f.Categories) == 0 {
		_, ok := s.EncryptionFor(path, "")
		return ok
	}
	for _, c := range f.Categories {
		if _, ok := s.EncryptionFor(path, c); ok {
			return true
		}
	}
	return false
}

// hasEncryptRule reports whether s has an encrypt rule (its default does
// not count: it applies only when redacting).
func hasEncryptRule(s policy.Stream) bool {
	for _, t := range s.Treatments {
		if t.Action == policy.ActionEncrypt {
			return true
		}
	}
	return false
}

// NeedsDataKey reports whether the output that d describes on stream s
// encrypts some field, so that the subject's data key is needed: a
// redaction (TreatRedact) when the stream has an encrypt rule or default
// (the fields the redaction visits are only known then), a passed or
// excluded-removed output when its Plan encrypts.
func NeedsDataKey(d Decision, s policy.Stream) bool {
	switch {
	case d.Outcome == Dropped:
		return false
	case d.Treatment == TreatRedact:
		return s.Encrypts()
	}
	return d.Plan.Encrypts()
}

// below reports whether path lies inside one of the fields at prefixes.
func below(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) && len(path) > len(p) {
			switch path[len(p)] {
			case '.', '[', '{':
				return true
			}
		}
	}
	return false
}
