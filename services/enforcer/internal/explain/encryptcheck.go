package explain

import (
	"fmt"
	"slices"
	"strings"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

// encryptErrors returns an error for every field of an accepted schema
// (every version) whose first matching rule of s is an encrypt rule while
// its type cannot hold a ciphertext: only string and bytes can (without a
// logical type that goavro represents by another Go type), also as the
// branches of a union, the items of an array, the values of a map, or the
// fields of a record (inside an encrypted field every value is encrypted,
// save those whose own first rule removes or encrypts them).
// Package redact removes such a field instead, so the rule cannot apply.
// A field rule for a path at a depth of a recursive type the walk does not
// reach is checked at that path (fieldsAt).
//
// With default_treatment: encrypt on a stream that redacts, it returns a
// warning (not an error) for every annotated field that no rule matches
// and whose type cannot hold a ciphertext: the default is one setting for
// every annotated field of every accepted schema, the redaction removes
// such a field (as default_treatment: remove would), and a rule of its own
// says what the field gets instead and silences the warning.
func encryptErrors(s policy.Stream, accepted []*avrocodec.Schema, at func(token string, from int, format string, args ...any) *policy.Error) (errs, warns []*policy.Error) {
	if !s.Encrypts() {
		return nil, nil
	}
	seen := map[string]bool{}
	byDefault := s.DefaultTreatment == policy.ActionEncrypt && s.OnMissing == policy.OnMissingRedact
	for _, sc := range accepted {
		walked := map[string]bool{}
		var whole []string // paths a redaction removes or encrypts whole
		check := func(path, category string, t *avrocodec.Type) {
			walked[path] = true
			inside := slices.ContainsFunc(whole, func(p string) bool { return below(path, p) })
			if a := s.TreatmentFor(path, category); a == policy.ActionRemove || a == policy.ActionEncrypt {
				whole = append(whole, path)
			}
			rule, ok := firstRule(s, path, category)
			// A field inside one a redaction removes or encrypts whole is
			// not reached by the default (the latter's check covers it).
			viaDefault := !ok && category != "" && byDefault && !inside
			if !viaDefault && (!ok || rule.Action != policy.ActionEncrypt) {
				return
			}
			// Inside an encrypted field every value is encrypted, save
			// those whose own rule removes them or encrypts them (they are
			// checked on their own); a default does not count, its
			// encrypt is inherited (package redact).
			own := func(p, c string) bool {
				r, ok := firstRule(s, p, c)
				return ok && (r.Action == policy.ActionRemove || r.Action == policy.ActionEncrypt)
			}
			badPath, badType, ok := cannotHold(t, path, own, map[*avrocodec.Type]bool{})
			if ok {
				return
			}
			where := ""
			if badPath != path {
				where = fmt.Sprintf(" (its field %s is %s)", badPath, badType)
			}
			if viaDefault {
				key := fmt.Sprint("default\x00", sc.FullName, "\x00", path, "\x00", describeType(t))
				if seen[key] {
					return
				}
				seen[key] = true
				warns = append(warns, at("default_treatment", s.Line, "warning: stream %s: default_treatment is encrypt, so a redacted event encrypts field %s (%s) of %s version %d, of type %s%s, which cannot hold a ciphertext: "+
					"only string and bytes can (also in a union with null, an array, a map, or a record of them); what cannot hold one is removed instead (give the field a rule of its own to say what it gets)",
					s.Topic, path, category, sc.FullName, sc.Version, describeType(t), where))
				return
			}
			token := rule.Category
			if token == "" {
				token = rule.Field
			}
			msg := fmt.Sprintf("stream %s: the encrypt rule (line %d) matches field %s of %s version %d, of type %s%s, which cannot hold a ciphertext: "+
				"only string and bytes can (also in a union with null, an array, a map, or a record of them); the field would be removed instead",
				s.Topic, rule.Line, path, sc.FullName, sc.Version, describeType(t), where)
			key := fmt.Sprint(rule.Line, "\x00", sc.FullName, "\x00", path, "\x00", describeType(t))
			if seen[key] {
				return
			}
			seen[key] = true
			errs = append(errs, at(token, rule.Line, "%s", msg))
		}
		walkFields(sc.Root(), "", map[*avrocodec.Type]bool{}, check)
		for _, r := range s.Treatments {
			if r.Field == "" || r.Action != policy.ActionEncrypt || walked[r.Field] {
				continue
			}
			for _, f := range fieldsAt(sc.Root(), r.Field) {
				check(r.Field, f.Category, f.Type)
			}
		}
	}
	return errs, warns
}

// fieldsAt returns the record fields at path (the syntax of
// avrocodec.Schema.Annotations) in the values of t, following the type
// graph: at any depth of a recursive type, in every union branch. A path
// avrocodec.Schema.Fields lists gives the same fields; a deeper one gives
// the fields the redaction visits there.
func fieldsAt(t *avrocodec.Type, path string) []*avrocodec.RecordField {
	var out []*avrocodec.RecordField
	var walk func(t *avrocodec.Type, rest string, depth int)
	walk = func(t *avrocodec.Type, rest string, depth int) {
		if t == nil || depth > 4*len(path)+8 {
			return
		}
		switch t.Kind {
		case avrocodec.KindUnion:
			for _, b := range t.Branches {
				walk(b, rest, depth+1)
			}
		case avrocodec.KindArray:
			if r, ok := strings.CutPrefix(rest, "[]"); ok {
				walk(t.Items, r, depth+1)
			}
		case avrocodec.KindMap:
			if r, ok := strings.CutPrefix(rest, "{}"); ok {
				walk(t.Values, r, depth+1)
			}
		case avrocodec.KindRecord:
			rest = strings.TrimPrefix(rest, ".")
			name, tail := rest, ""
			if i := strings.IndexAny(rest, ".[{"); i >= 0 {
				name, tail = rest[:i], rest[i:]
			}
			for _, f := range t.Fields {
				if f.Name != name {
					continue
				}
				if tail == "" {
					if !slices.Contains(out, f) {
						out = append(out, f)
					}
					continue
				}
				walk(f.Type, tail, depth+1)
			}
		}
	}
	walk(t, path, 0)
	return out
}

// firstRule returns the first rule of s that matches the field, in
// Stream.TreatmentFor's order.
func firstRule(s policy.Stream, path, category string) (policy.Treatment, bool) {
	for _, t := range s.Treatments {
		if (t.Field != "" && t.Field == path) || (t.Category != "" && policy.MatchCategory(t.Category, category)) {
			return t, true
		}
	}
	return policy.Treatment{}, false
}

// walkFields calls fn for every field of the records inside t (through
// unions, arrays and maps), with its path in the syntax of
// avrocodec.Schema.Annotations; a recursive type is walked once.
func walkFields(t *avrocodec.Type, prefix string, onPath map[*avrocodec.Type]bool, fn func(path, category string, t *avrocodec.Type)) {
	if t == nil {
		return
	}
	switch t.Kind {
	case avrocodec.KindRecord:
		if onPath[t] {
			return
		}
		onPath[t] = true
		defer delete(onPath, t)
		for _, f := range t.Fields {
			p := f.Name
			if prefix != "" {
				p = prefix + "." + f.Name
			}
			fn(p, f.Category, f.Type)
			walkFields(f.Type, p, onPath, fn)
		}
	case avrocodec.KindUnion:
		for _, b := range t.Branches {
			walkFields(b, prefix, onPath, fn)
		}
	case avrocodec.KindArray:
		walkFields(t.Items, prefix+"[]", onPath, fn)
	case avrocodec.KindMap:
		walkFields(t.Values, prefix+"{}", onPath, fn)
	}
}

// cannotHold checks whether every value of t (at path) can be encrypted;
// when not, it names the first part that cannot (its path and type) and
// ok is false.
func cannotHold(t *avrocodec.Type, path string, own func(path, category string) bool, onPath map[*avrocodec.Type]bool) (badPath, badType string, ok bool) {
	switch t.Kind {
	case avrocodec.KindNull:
		return "", "", true
	case avrocodec.KindString, avrocodec.KindBytes:
		if t.Logical == "" {
			return "", "", true
		}
	case avrocodec.KindUnion:
		for _, b := range t.Branches {
			if b.Kind != avrocodec.KindNull && !holds(b, path, own, onPath) {
				return path, describeType(t), false
			}
		}
		return "", "", true
	case avrocodec.KindArray:
		return cannotHold(t.Items, path+"[]", own, onPath)
	case avrocodec.KindMap:
		return cannotHold(t.Values, path+"{}", own, onPath)
	case avrocodec.KindRecord:
		if onPath[t] {
			return "", "", true
		}
		onPath[t] = true
		defer delete(onPath, t)
		for _, f := range t.Fields {
			fp := path + "." + f.Name
			if own(fp, f.Category) {
				continue // removed, or encrypted by its own rule (and checked on its own)
			}
			if bp, bt, ok := cannotHold(f.Type, fp, own, onPath); !ok {
				return bp, bt, false
			}
		}
		return "", "", true
	}
	return path, describeType(t), false
}

func holds(t *avrocodec.Type, path string, own func(path, category string) bool, onPath map[*avrocodec.Type]bool) bool {
	_, _, ok := cannotHold(t, path, own, onPath)
	return ok
}

// describeType names a type briefly: its kind, logical type and name.
func describeType(t *avrocodec.Type) string {
	switch t.Kind {
	case avrocodec.KindUnion:
		parts := make([]string, len(t.Branches))
		for i, b := range t.Branches {
			parts[i] = describeType(b)
		}
		return "union [" + strings.Join(parts, ", ") + "]"
	case avrocodec.KindArray:
		return "array of " + describeType(t.Items)
	case avrocodec.KindMap:
		return "map of " + describeType(t.Values)
	}
	d := string(t.Kind)
	if t.Name != "" {
		d += " " + t.Name
	}
	if t.Logical != "" {
		d += " (" + t.Logical + ")"
	}
	return d
}

// below reports whether path lies inside the field at prefix.
func below(path, prefix string) bool {
	if len(path) <= len(prefix) || !strings.HasPrefix(path, prefix) {
		return false
	}
	switch path[len(prefix)] {
	case '.', '[', '{':
		return true
	}
	return false
}
