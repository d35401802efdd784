package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/consentgate/consentgate/pkg/consent"
)

// Problem is one entry of a 400 answer: the field it is about (by its name
// in schemas/consent_change.avsc; empty for a problem with the body as a
// whole) and what is wrong. A reason never repeats the field's value.
type Problem struct {
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// fieldOrder is the order of the fields in schemas/consent_change.avsc; the
// problems are reported in it.
var fieldOrder = []string{
	"change_id", "subject_id", "purpose", "action", "legal_basis",
	"excluded_categories", "source", "notice_version", "captured_at", "expires_at",
}

// timeExample is shown in the reasons of bad times.
const timeExample = "an RFC 3339 string such as 2026-05-01T12:00:00.000Z"

// Parse reads a consent change from a JSON object whose fields are named as
// in schemas/consent_change.avsc and validates it with [consent.Change.Validate].
// It returns every problem it finds (nil when the change is valid):
//
//   - the body must be one JSON object in UTF-8, with no duplicate and no
//     unknown field;
//   - when purposes is not nil, purpose must be one of them (the policy's
//     catalogue; the handler always passes it);
//   - excluded_categories of a GRANT must each name a node x of the data
//     category taxonomy, "x" or "x.*" (see [consent.Change.Validate]);
//   - change_id, subject_id, action and captured_at are required; purpose is
//     required except for ERASE, where it must be null or absent; a GRANT
//     also needs legal_basis, source and notice_version;
//   - strings must be JSON strings; excluded_categories an array of strings
//     (or null); purpose and expires_at may be null;
//   - captured_at and expires_at are RFC 3339 strings (any offset; kept to
//     the millisecond, as Avro's timestamp-millis). Epoch numbers are
//     rejected: seconds and milliseconds are too easy to confuse.
//
// Parse does not look at the clock: the handler applies the clock rule
// ([consent.Change.BoundCapturedAt]) against its receive time.
func Parse(body []byte, purposes map[string]bool) (consent.Change, []Problem) {
	var ps problems
	if len(bytes.TrimSpace(body)) == 0 {
		return consent.Change{}, ps.body("is empty: send a JSON object with the fields of schemas/consent_change.avsc")
	}
	if !utf8.Valid(body) {
		return consent.Change{}, ps.body("is not valid UTF-8")
	}
	raw, bodyProblem := readObject(body, &ps)
	if bodyProblem != "" {
		return consent.Change{}, ps.body(bodyProblem)
	}
	for k := range raw {
		if !knownField(k) {
			ps.add(k, "is not a field of ConsentChange (schemas/consent_change.avsc)")
		}
	}

	var c consent.Change
	c.ChangeID = ps.str(raw, "change_id", true, false)
	c.SubjectID = ps.str(raw, "subject_id", true, false)
	c.Action = consent.Action(ps.str(raw, "action", true, false))
	c.Purpose = ps.str(raw, "purpose", false, true)
	c.LegalBasis = consent.LegalBasis(ps.str(raw, "legal_basis", false, false))
	c.Source = ps.str(raw, "source", false, false)
	c.NoticeVersion = ps.str(raw, "notice_version", false, false)
	c.ExcludedCategories = ps.strList(raw, "excluded_categories")
	c.CapturedAt = ps.time(raw, "captured_at", true, false)
	c.ExpiresAt = ps.time(raw, "expires_at", false, true)
	if c.Action == consent.ActionErase && c.Purpose != "" {
		ps.add("purpose", "must be null or absent for ERASE, which covers every purpose")
	}

	for _, fe := range fieldErrors(c.Validate()) {
		reason := fe.Problem
		if _, present := raw[fe.Field]; !present {
			if rest, ok := strings.CutPrefix(reason, "is empty"); ok {
				reason = "is missing" + rest
			}
		}
		ps.add(fe.Field, reason) // dropped when the field already has a problem
	}
	if purposes != nil && c.Purpose != "" && !purposes[c.Purpose] {
		ps.add("purpose", "is not a purpose of the policy's catalogue")
	}
	if len(ps.list) > 0 {
		return consent.Change{}, ps.sorted()
	}
	return c, nil
}

// problemsOf turns a consent field error (or a join of them) into
// problems.
func problemsOf(err error) []Problem {
	var ps problems
	for _, fe := range fieldErrors(err) {
		ps.add(fe.Field, fe.Problem)
	}
	return ps.sorted()
}

// readObject reads the single top-level JSON object of body into its raw
// members. A duplicate member is reported on ps; a body that is not one JSON
// object returns the problem to report.
func readObject(body []byte, ps *problems) (map[string]json.RawMessage, string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	invalid := func(err error) string { return "is not valid JSON: " + err.Error() }
	tok, err := dec.Token()
	if err != nil {
		return nil, invalid(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, "must be a JSON object with the fields of schemas/consent_change.avsc"
	}
	raw := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid(err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, invalid(err)
		}
		if _, dup := raw[key]; dup {
			ps.add(key, "appears more than once")
			continue
		}
		raw[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, "holds more than one JSON value: send exactly one object"
	}
	return raw, ""
}

func knownField(name string) bool {
	for _, f := range fieldOrder {
		if f == name {
			return true
		}
	}
	return false
}

// fieldErrors flattens the errors.Join tree of Validate into its
// *consent.FieldError leaves.
func fieldErrors(err error) []*consent.FieldError {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*consent.FieldError
		for _, e := range j.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	}
	var fe *consent.FieldError
	if errors.As(err, &fe) {
		return []*consent.FieldError{fe}
	}
	return []*consent.FieldError{{Field: "", Problem: "is invalid"}}
}

// problems collects at most one problem per field (the first found, which is
// the most specific), plus problems with the body.
type problems struct {
	list []Problem
	seen map[string]bool
}

func (p *problems) add(field, reason string) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if field != "" && p.seen[field] {
		return
	}
	p.seen[field] = true
	p.list = append(p.list, Problem{Field: field, Reason: reason})
}

// body returns the problems so far plus one with the body as a whole.
func (p *problems) body(reason string) []Problem {
	p.add("", "body "+reason)
	return p.sorted()
}

// sorted orders the problems: the body first, then the fields in schema
// order, then unknown fields by name.
func (p *problems) sorted() []Problem { return p.sortedBy(fieldOrder) }

// sortedBy orders the problems: the body first, then the fields in the
// given order (a field "x[i]" with x), then unknown fields by name.
func (p *problems) sortedBy(order []string) []Problem {
	rank := func(f string) int {
		if f == "" {
			return -1
		}
		base, _, _ := strings.Cut(f, "[")
		for i, n := range order {
			if n == base {
				return i
			}
		}
		return len(order)
	}
	out := append([]Problem(nil), p.list...)
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank(out[i].Field), rank(out[j].Field)
		if ri != rj {
			return ri < rj
		}
		return out[i].Field < out[j].Field
	})
	return out
}

// jsonKind names the JSON type of a raw value, for reasons.
func jsonKind(raw json.RawMessage) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return "empty"
	}
	switch b[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// str reads a string field. required: absence is a problem; nullable: null
// reads as empty (else null is a problem).
func (p *problems) str(raw map[string]json.RawMessage, name string, required, nullable bool) string {
	v, ok := raw[name]
	if !ok {
		if required {
			p.add(name, "is missing")
		}
		return ""
	}
	if isNull(v) {
		if !nullable {
			p.add(name, "is null, want a string")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		p.add(name, "is "+jsonKind(v)+", want a string")
		return ""
	}
	return s
}

func (p *problems) strList(raw map[string]json.RawMessage, name string) []string {
	v, ok := raw[name]
	if !ok || isNull(v) {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		p.add(name, "is "+jsonKind(v)+", want an array of strings")
		return nil
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			p.add(name, "item "+strconv.Itoa(i)+" is "+jsonKind(it)+", want a string")
			return nil
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (p *problems) time(raw map[string]json.RawMessage, name string, required, nullable bool) time.Time {
	v, ok := raw[name]
	if !ok {
		if required {
			p.add(name, "is missing; send "+timeExample)
		}
		return time.Time{}
	}
	if isNull(v) {
		if !nullable {
			p.add(name, "is null; send "+timeExample)
		}
		return time.Time{}
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		if jsonKind(v) == "a number" {
			p.add(name, "is a number; send "+timeExample+" (epoch numbers are not accepted)")
		} else {
			p.add(name, "is "+jsonKind(v)+"; send "+timeExample)
		}
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		p.add(name, "is not "+timeExample)
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}
