package explain

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
)

// CheckResult is what Check found in one policy file.
type CheckResult struct {
	// Policy is the parsed policy; nil when the file does not parse.
	Policy *policy.Policy
	// Source names the file, as given to Check.
	Source string
	// Errors are the problems that stop the enforcer at start-up (policy
	// syntax and semantics from policy.Parse) or that make a rule
	// meaningless for the schema catalog: an unknown schema name, a field
	// path that no accepted schema has. Sorted by position.
	Errors []*policy.Error
	// Warnings do not stop the policy from being valid but need attention
	// before deployment, such as pseudonymisation without a configured key.
	Warnings []*policy.Error
}

// OK reports whether the policy has no errors.
func (r CheckResult) OK() bool { return len(r.Errors) == 0 }

// Check validates the policy file data (named source in messages) as the
// enforcer would load it, and also what only the enforcer knows:
//
//   - every name under a stream's schemas: is the full name of a schema in
//     cat (a name that is not can never match, so the stream would silently
//     receive nothing of that kind);
//   - every field: path of a treatment exists in at least one schema the
//     stream accepts (avrocodec.Schema.Fields, or a deeper path of a
//     recursive type; any version; every schema of cat when the stream
//     lists none);
//   - with haveKey false, a stream that pseudonymises is a warning: the
//     enforcer refuses to start without PSEUDONYMISATION_KEY_FILE or
//     PSEUDONYMISATION_KEY;
//   - an encrypt rule that is the first matching rule of a field, in an
//     accepted schema (any version), whose type cannot hold a ciphertext
//     (anything but string and bytes, also in a union with null, an array,
//     a map or a record of them) is an error: the rule cannot apply, the
//     field would be removed (encryptErrors); with default_treatment:
//     encrypt on a redacting stream, such an annotated field that no rule
//     matches is a warning;
//   - a setting that cannot take effect on any output of its stream is a
//     warning (see ineffective): a category rule no field of an accepted
//     schema matches, unannotated_fields: remove where no accepted schema
//     has an unannotated field left to remove, and treatments or
//     default_treatment on a stream that never redacts (on_missing_consent:
//     drop), save the field rules that unannotated_fields: remove applies
//     and the encrypt rules, which apply on every output.
//   - in the signals section, a category rule that never applies (no rule
//     that can grant maps its purposes: a category rule only narrows a
//     GRANT) is a warning, and so is a category rule on an opt-out field
//     that is not an objection flag, which always excludes its categories
//     (signalWarnings), and a category of a signals rule that no field of
//     any schema of cat matches (signalCategoryWarnings). The rules on
//     opt-out fields that decide purposes only take consent away; the
//     summary lists them (WriteSummary), they are no warning. A policy
//     without a signals section has none of these.
//
// Findings of the last four kinds carry the line of the stream or rule and
// the column of the offending name when it can be found on the lines of
// that stream, else column 1.
func Check(data []byte, source string, cat *avrocodec.Catalog, haveKey bool) CheckResult {
	res := CheckResult{Source: source}
	pol, err := policy.Parse(data, source)
	if err != nil {
		res.Errors = policy.Problems(err)
		if len(res.Errors) == 0 {
			res.Errors = []*policy.Error{{Source: source, Line: 1, Column: 1, Problem: err.Error()}}
		}
		return res
	}
	res.Policy = pol
	lines := strings.Split(string(data), "\n")
	for i, s := range pol.Streams {
		end := len(lines) + 1
		if i+1 < len(pol.Streams) {
			end = pol.Streams[i+1].Line
		}
		at := func(token string, from int, format string, args ...any) *policy.Error {
			line, col := locate(lines, token, from, end)
			return &policy.Error{Source: source, Line: line, Column: col, Problem: fmt.Sprintf(format, args...)}
		}
		var accepted []*avrocodec.Schema
		if len(s.Schemas) == 0 {
			accepted = cat.Schemas()
		}
		for _, name := range s.Schemas {
			versions := cat.Versions(name)
			if len(versions) == 0 {
				res.Errors = append(res.Errors, at(name, s.Line, "stream %s: unknown schema %s: the schema catalog has %s%s",
					s.Topic, name, strings.Join(names(cat), ", "), suggest(name, names(cat))))
				continue
			}
			accepted = append(accepted, versions...)
		}
		for _, t := range s.Treatments {
			if t.Field == "" || len(accepted) == 0 {
				continue
			}
			if slices.ContainsFunc(accepted, func(sc *avrocodec.Schema) bool { return hasField(sc, t.Field) }) {
				continue
			}
			var all []string
			for _, sc := range accepted {
				for _, f := range sc.Fields {
					if !slices.Contains(all, f.Path) {
						all = append(all, f.Path)
					}
				}
			}
			res.Errors = append(res.Errors, at(t.Field, t.Line, "stream %s: no schema the stream accepts has the field %s, so the rule never applies%s",
				s.Topic, t.Field, suggest(t.Field, all)))
		}
		encErrs, encWarns := encryptErrors(s, accepted, at)
		res.Errors = append(res.Errors, encErrs...)
		res.Warnings = append(res.Warnings, encWarns...)
		res.Warnings = append(res.Warnings, ineffective(s, accepted, at)...)
		if !haveKey {
			if line, a, ok := pseudonymises(s); ok && a == policy.ActionPseudonymise {
				res.Warnings = append(res.Warnings, at("pseudonymise", line,
					"warning: stream %s pseudonymises fields but no key is set: the enforcer will not start without PSEUDONYMISATION_KEY_FILE (or PSEUDONYMISATION_KEY)", s.Topic))
			} else if ok {
				res.Warnings = append(res.Warnings, at(string(a), line,
					"warning: stream %s uses %s, which pseudonymises the keys of a map it applies to, but no key is set: the enforcer will not start without PSEUDONYMISATION_KEY_FILE (or PSEUDONYMISATION_KEY)", s.Topic, a))
			}
		}
	}
	res.Warnings = append(res.Warnings, signalWarnings(pol, lines, source)...)
	res.Warnings = append(res.Warnings, signalCategoryWarnings(pol, cat, lines, source)...)
	sortFindings(res.Errors)
	sortFindings(res.Warnings)
	return res
}

// ineffective returns a warning for every setting of stream s that cannot
// take effect on any of its outputs, given the schemas it accepts (every
// version: the enforcer judges the writer's fields as well as the reader's).
func ineffective(s policy.Stream, accepted []*avrocodec.Schema, at func(token string, from int, format string, args ...any) *policy.Error) []*policy.Error {
	if len(accepted) == 0 {
		return nil
	}
	var out []*policy.Error
	categories, unannotated := fieldCategories(accepted)
	redacts := s.OnMissing == policy.OnMissingRedact
	removesUnannotated := s.Unannotated == policy.UnannotatedRemove
	for _, t := range s.Treatments {
		switch {
		case t.Category != "" && !matchesCategory(t.Category, categories):
			out = append(out, at(t.Category, t.Line, "warning: stream %s: no field of a schema the stream accepts has a category %s matches, so the rule never applies",
				s.Topic, t.Category))
		case redacts:
		case t.Action == policy.ActionEncrypt:
			// Encrypt rules apply on every output, redacting or not.
		case t.Category != "":
			out = append(out, at(t.Category, t.Line, "warning: stream %s: on_missing_consent is drop, so the stream never redacts and the category rule %s never applies",
				s.Topic, t.Category))
		case !slices.ContainsFunc(accepted, func(sc *avrocodec.Schema) bool { return hasField(sc, t.Field) }):
			// An error already.
		case !removesUnannotated || !slices.Contains(unannotated, t.Field):
			out = append(out, at(t.Field, t.Line, "warning: stream %s: on_missing_consent is drop, so the stream never redacts and the rule for %s never applies"+
				" (a field rule takes effect on a drop stream only for an unannotated field with unannotated_fields: remove)", s.Topic, t.Field))
		}
	}
	if !redacts && s.DefaultTreatment != "" && s.DefaultTreatment != policy.ActionRemove {
		out = append(out, at("default_treatment", s.Line, "warning: stream %s: on_missing_consent is drop, so the stream never redacts and default_treatment never applies", s.Topic))
	}
	if removesUnannotated {
		left := slices.ContainsFunc(unannotated, func(path string) bool {
			for _, t := range s.Treatments {
				if t.Field == path {
					return t.Action != policy.ActionKeep
				}
			}
			return true
		})
		if !left {
			out = append(out, at("unannotated_fields", s.Line, "warning: stream %s: unannotated_fields is remove, but no schema the stream accepts has an unannotated field it would remove", s.Topic))
		}
	}
	return out
}

// fieldCategories returns the categories the fields of schemas carry and
// the paths of their unannotated fields, each once.
func fieldCategories(schemas []*avrocodec.Schema) (categories, unannotated []string) {
	for _, sc := range schemas {
		for _, f := range sc.Fields {
			if f.Category == "" {
				if !slices.Contains(unannotated, f.Path) {
					unannotated = append(unannotated, f.Path)
				}
			} else if !slices.Contains(categories, f.Category) {
				categories = append(categories, f.Category)
			}
		}
	}
	return categories, unannotated
}

// matchesCategory reports whether the rule category (a category or a
// broader one, policy.MatchCategory) matches one of categories.
func matchesCategory(rule string, categories []string) bool {
	return slices.ContainsFunc(categories, func(c string) bool { return policy.MatchCategory(rule, c) })
}

// encryptRules counts the encrypt rules of s.
func encryptRules(s policy.Stream) int {
	n := 0
	for _, t := range s.Treatments {
		if t.Action == policy.ActionEncrypt {
			n++
		}
	}
	return n
}

// A path at a depth of a recursive type that Fields does not list (it
// lists such a type once) counts too: the redaction follows the value
// there and applies the rule (fieldsAt).
func hasField(s *avrocodec.Schema, path string) bool {
	return slices.ContainsFunc(s.Fields, func(f avrocodec.FieldInfo) bool { return f.Path == path }) ||
		len(fieldsAt(s.Root(), path)) > 0
}

// pseudonymises returns the line and action of the first rule of s that
// can make a pseudonym (redact.ActionNeedsKey), or of the stream when its
// default treatment can.
func pseudonymises(s policy.Stream) (int, policy.Action, bool) {
	for _, t := range s.Treatments {
		if redact.ActionNeedsKey(t.Action) {
			return t.Line, t.Action, true
		}
	}
	if redact.ActionNeedsKey(s.DefaultTreatment) {
		return s.Line, s.DefaultTreatment, true
	}
	return 0, "", false
}

func sortFindings(f []*policy.Error) {
	slices.SortStableFunc(f, func(a, b *policy.Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

// locate finds token on lines from (1-based) up to before end, as a whole
// word (not part of a longer name or path), and returns its line and column
// (1-based, in bytes). Not found: (from, 1).
func locate(lines []string, token string, from, end int) (int, int) {
	for ln := max(from, 1); ln < end && ln <= len(lines); ln++ {
		text := lines[ln-1]
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		for off := 0; ; {
			i := strings.Index(text[off:], token)
			if i < 0 {
				break
			}
			i += off
			j := i + len(token)
			if (i == 0 || !wordByte(text[i-1])) && (j == len(text) || (!wordByte(text[j]) && text[j] != '[')) {
				return ln, i + 1
			}
			off = i + 1
		}
	}
	return max(from, 1), 1
}

// wordByte reports whether b may be part of a name, pattern or field path
// (a "[" after a token continues it as a path: items[].sku).
func wordByte(b byte) bool {
	return b == '_' || b == '.' || b == '*' ||
		(b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

// suggest returns "; did you mean X?" for the closest candidate within a
// small edit distance, or "".
func suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+2
	for _, c := range candidates {
		if d := policy.EditDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return "; did you mean " + best + "?"
}

// WriteSummary prints a valid policy: its version, purposes and streams,
// and for a policy with a signals section the signal sources no rule maps,
// the rules that only take consent away and the unmapped fields of the
// sources it maps (writeSignalsSummary).
func (r CheckResult) WriteSummary(w io.Writer) error {
	pol := r.Policy
	if pol == nil {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s: ok, version %s\n", r.Source, pol.Version)
	fmt.Fprintf(tw, "purposes (%d):\n", len(pol.Purposes))
	for _, p := range pol.Purposes {
		kind := "opt-in"
		if p.OptOut {
			kind = "opt-out"
		}
		fmt.Fprintf(tw, "  %s\t%s\tlegal bases %s\n", p.ID, kind, strings.Join(p.LegalBases, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "streams (%d):\n", len(pol.Streams))
	for _, s := range pol.Streams {
		schemas := "all"
		if len(s.Schemas) > 0 {
			schemas = strings.Join(s.Schemas, ", ")
		}
		mode := "on_missing_consent " + string(s.OnMissing) + ", excluded_categories " + s.Excluded + ", unannotated_fields " + s.Unannotated
		if s.OnMissing == policy.OnMissingRedact {
			mode += fmt.Sprintf(", %d treatment rules, default_treatment %s", len(s.Treatments), s.DefaultTreatment)
		}
		if n := encryptRules(s); n > 0 {
			mode += fmt.Sprintf(", %d encrypt rules (every output)", n)
		}
		fmt.Fprintf(w, "  %s\n    purposes: %s\n    schemas:  %s\n    mode:     %s\n", s.Topic, strings.Join(s.Purposes, ", "), schemas, mode)
	}
	writeSignalsSummary(w, pol)
	return nil
}
