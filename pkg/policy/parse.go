package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

var (
	purposeIDSyntax  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	topicSyntax      = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	schemaNameSyntax = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	fieldPathSyntax  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\[\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\])?)*$`)
	recipientSyntax  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9 ._/-]{0,62}[A-Za-z0-9])?$`)
)

// maxText bounds free-text values (descriptions, the controller's name and
// contact): they go into the record of processing activities.
const maxText = 1000

// Keys allowed in each mapping, in documentation order.
var (
	topKeys        = []string{"controller", "purposes", "streams", "signals"}
	controllerKeys = []string{"name", "contact"}
	purposeKeys    = []string{"id", "description", "legal_bases", "opt_out"}
	streamKeys     = []string{"topic", "description", "purposes", "recipients", "schemas", "on_missing_consent", "unannotated_fields", "excluded_categories", "treatments", "default_treatment", "google_consent_mode"}
	treatmentKeys  = []string{"category", "field", "action", "encryption"}
)

// maxQuoted bounds how much of a bad value a message repeats.
const maxQuoted = 64

// parser walks the yaml.Node tree of one policy file and collects problems.
type parser struct {
	source string
	data   []byte
	errs   []error
}

func (p *parser) errorf(line, col int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	p.errs = append(p.errs, &Error{Source: p.source, Line: line, Column: col, Problem: fmt.Sprintf(format, args...)})
}

func (p *parser) nodeErrorf(n *yaml.Node, format string, args ...any) {
	p.errorf(n.Line, n.Column, format, args...)
}

// err returns the problems in file order, joined.
func (p *parser) err() error {
	slices.SortStableFunc(p.errs, func(a, b error) int {
		ea, eb := a.(*Error), b.(*Error)
		if ea.Line != eb.Line {
			return ea.Line - eb.Line
		}
		return ea.Column - eb.Column
	})
	return errors.Join(p.errs...)
}

// quote quotes a value of the policy file for a message, shortened.
func quote(s string) string {
	if len(s) > maxQuoted {
		s = s[:maxQuoted] + "..."
	}
	return strconv.Quote(s)
}

// decode reads the single YAML document of the file. It returns nil when
// there is nothing to validate (an empty file or a syntax error, already
// reported).
func (p *parser) decode() (root *yaml.Node) {
	defer func() {
		// yaml.v3 reports errors by panicking internally and recovering; a
		// panic escaping it is a parser bug, reported as a problem of the
		// file rather than crashing the service that loads it.
		if r := recover(); r != nil {
			root = nil
			p.errorf(1, 1, "yaml parser failed on this file: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(p.data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(1, 1, "empty policy file: it needs at least purposes and streams")
			return nil
		}
		p.syntaxError(err)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.syntaxError(err)
		return nil
	case len(next.Content) > 0:
		p.nodeErrorf(next.Content[0], "a second YAML document: a policy file holds exactly one")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.errorf(1, 1, "empty policy file: it needs at least purposes and streams")
		return nil
	}
	return doc.Content[0]
}

var (
	yamlLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// parserProblems are the yaml.v3 error texts raised by its parser (as
// opposed to its scanner): for these it reports a 0-based line.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// syntaxError reports a yaml.v3 error with the best line it can find.
func (p *parser) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 1, 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, convErr := strconv.Atoi(m[1])
		if convErr == nil {
			line = n
		}
		msg = m[2]
		if slices.Contains(parserProblems, msg) {
			line++ // yaml.v3 reports parser errors with a 0-based line
		}
	} else if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(p.data, []byte("*"+m[1])); i >= 0 {
			line, col = position(p.data, i)
		}
	} else if i := badCharacter(p.data); i >= 0 {
		line, col = position(p.data, i)
	}
	p.errorf(line, col, "yaml syntax error: %s", msg)
}

// badCharacter returns the offset of the first byte that YAML rejects
// (invalid UTF-8 or a control character other than tab and line breaks), or -1.
func badCharacter(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' && r != 0x85 {
			return i
		}
		i += size
	}
	return -1
}

// position converts a byte offset to a 1-based line and column (in runes).
func position(data []byte, offset int) (line, col int) {
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

// entry is one key of a mapping with its value.
type entry struct {
	key, val *yaml.Node
}

// usable reports whether n can be read at all; aliases are refused because
// a policy should say everything where it is used (and aliases can form
// cycles).
func (p *parser) usable(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		p.nodeErrorf(n, "YAML aliases (*name) are not supported in a policy file: write the value out")
		return false
	}
	return true
}

// mapping checks that n is a mapping with only the allowed keys, each once,
// and returns its entries by key. what names the mapping in messages.
func (p *parser) mapping(n *yaml.Node, what string, allowed []string) (map[string]entry, bool) {
	if !p.usable(n) {
		return nil, false
	}
	if n.Kind != yaml.MappingNode {
		p.nodeErrorf(n, "%s must be a mapping with keys %s", what, strings.Join(allowed, ", "))
		return nil, false
	}
	out := make(map[string]entry, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.nodeErrorf(k, "%s has a key that is not a plain name", what)
			continue
		}
		if !slices.Contains(allowed, k.Value) {
			hint := ""
			if s := suggest(k.Value, allowed); s != "" {
				hint = "; did you mean " + s + "?"
			}
			p.nodeErrorf(k, "unknown key %s in %s%s (allowed: %s)", quote(k.Value), what, hint, strings.Join(allowed, ", "))
			continue
		}
		if first, dup := out[k.Value]; dup {
			p.nodeErrorf(k, "duplicate key %s in %s (first at line %d)", k.Value, what, first.key.Line)
			continue
		}
		out[k.Value] = entry{key: k, val: v}
	}
	return out, true
}

// isNull reports whether n is an empty or explicit null value.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// isEmpty reports whether n is null or an empty list.
func isEmpty(n *yaml.Node) bool {
	return isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0)
}

// scalar returns the text of a scalar value.
func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	if !p.usable(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.nodeErrorf(n, "%s must be a single value, not a list or mapping", what)
		return "", false
	}
	if isNull(n) {
		p.nodeErrorf(n, "%s is empty", what)
		return "", false
	}
	return n.Value, true
}

// list returns the items of a sequence value; null counts as empty.
func (p *parser) list(n *yaml.Node, what string) ([]*yaml.Node, bool) {
	if !p.usable(n) {
		return nil, false
	}
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		p.nodeErrorf(n, "%s must be a list (for example [a, b] or one \"- item\" per line)", what)
		return nil, false
	}
	return n.Content, true
}

// stringList returns the scalar items of a sequence value, reporting
// duplicates.
func (p *parser) stringList(n *yaml.Node, what string) ([]string, []*yaml.Node, bool) {
	items, ok := p.list(n, what)
	if !ok {
		return nil, nil, false
	}
	vals := make([]string, 0, len(items))
	nodes := make([]*yaml.Node, 0, len(items))
	seen := make(map[string]int, len(items))
	good := true
	for _, it := range items {
		v, ok := p.scalar(it, "an item of "+what)
		if !ok {
			good = false
			continue
		}
		if first, dup := seen[v]; dup {
			p.nodeErrorf(it, "duplicate %s in %s (first at line %d)", quote(v), what, first)
			good = false
			continue
		}
		seen[v] = it.Line
		vals = append(vals, v)
		nodes = append(nodes, it)
	}
	return vals, nodes, good
}

// boolean reads a true/false value: a plain YAML boolean, never a string
// ("true" in quotes), a number, yes/no, a list or a mapping.
func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	if !p.usable(n) {
		return false, false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.nodeErrorf(n, "%s must be true or false", what)
		return false, false
	}
	return b, true
}

// oneOf reads an enumerated value.
func (p *parser) oneOf(n *yaml.Node, what string, allowed []string) (string, bool) {
	v, ok := p.scalar(n, what)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, v) {
		p.nodeErrorf(n, "bad %s %s: allowed values are %s", what, quote(v), strings.Join(allowed, ", "))
		return "", false
	}
	return v, true
}

func actionNames() []string {
	out := make([]string, len(Actions))
	for i, a := range Actions {
		out[i] = string(a)
	}
	return out
}

func encryptionNames() []string {
	out := make([]string, len(Encryptions))
	for i, e := range Encryptions {
		out[i] = string(e)
	}
	return out
}

// parse walks the document; problems are collected in p.errs.
func (p *parser) parse() *Policy {
	root := p.decode()
	if root == nil {
		return nil
	}
	top, ok := p.mapping(root, "the policy", topKeys)
	if !ok {
		return nil
	}
	pol := &Policy{}
	if e, ok := top["controller"]; ok {
		pol.Controller = p.controller(e.key, e.val)
	}
	purposeLines := map[string]int{}
	if e, ok := top["purposes"]; !ok {
		p.nodeErrorf(root, "no purposes: declare at least one under purposes:")
	} else if isEmpty(e.val) {
		p.nodeErrorf(e.key, "no purposes: declare at least one under purposes:")
	} else {
		pol.Purposes = p.purposes(e.val, purposeLines)
	}
	if e, ok := top["streams"]; !ok {
		p.nodeErrorf(root, "no streams: declare at least one under streams: (a topic and its purposes)")
	} else if isEmpty(e.val) {
		p.nodeErrorf(e.key, "no streams: declare at least one under streams: (a topic and its purposes)")
	} else {
		pol.Streams = p.streams(e.val, purposeLines)
	}
	if e, ok := top["signals"]; ok {
		byID := make(map[string]Purpose, len(pol.Purposes))
		for _, pu := range pol.Purposes {
			byID[pu.ID] = pu
		}
		pol.Signals = p.signals(e.key, e.val, purposeLines, byID)
	}
	return pol
}

// controller reads the optional controller block: a name (required in the
// block) and a contact (optional).
func (p *parser) controller(key, n *yaml.Node) Controller {
	c := Controller{Line: key.Line}
	if isNull(n) {
		p.nodeErrorf(key, "controller is empty: give its name (and contact), or leave the key out")
		return Controller{}
	}
	m, ok := p.mapping(n, "controller", controllerKeys)
	if !ok {
		return Controller{}
	}
	if e, ok := m["name"]; !ok {
		p.nodeErrorf(n, "controller has no name: give the legal name of the organisation that decides on the processing")
	} else if v, ok := p.text(e.val, "controller name"); ok {
		c.Name = v
	}
	if e, ok := m["contact"]; ok {
		if v, ok := p.text(e.val, "controller contact"); ok {
			c.Contact = v
		}
	}
	return c
}

// text reads a free-text value: one line or more, at most maxText bytes,
// not blank.
func (p *parser) text(n *yaml.Node, what string) (string, bool) {
	v, ok := p.scalar(n, what)
	if !ok {
		return "", false
	}
	switch {
	case strings.TrimSpace(v) == "":
		p.nodeErrorf(n, "%s is blank", what)
		return "", false
	case len(v) > maxText:
		p.nodeErrorf(n, "%s is %d bytes long: at most %d", what, len(v), maxText)
		return "", false
	}
	return strings.TrimSpace(v), true
}

// purposes reads the purposes list; ids (also of invalid purposes) are
// recorded in lines so that streams naming them are not reported again.
func (p *parser) purposes(n *yaml.Node, lines map[string]int) []Purpose {
	items, ok := p.list(n, "purposes")
	if !ok {
		return nil
	}
	var out []Purpose
	for _, it := range items {
		m, ok := p.mapping(it, "purpose", purposeKeys)
		if !ok {
			continue
		}
		pu := Purpose{Line: it.Line, LegalBases: []string{LegalBasisConsent}}
		good := true
		if e, ok := m["id"]; !ok {
			p.nodeErrorf(it, "purpose has no id")
			good = false
		} else if id, ok := p.scalar(e.val, "purpose id"); !ok {
			good = false
		} else {
			pu.ID = id
			if first, dup := lines[id]; dup {
				p.nodeErrorf(e.val, "duplicate purpose id %s (first at line %d)", quote(id), first)
				good = false
			} else {
				lines[id] = it.Line
			}
			if !purposeIDSyntax.MatchString(id) {
				p.nodeErrorf(e.val, "bad purpose id %s: it must match ^[a-z][a-z0-9_]*$ (lower case letters, digits, _)", quote(id))
				good = false
			}
		}
		if e, ok := m["description"]; ok && !isNull(e.val) {
			if d, ok := p.scalar(e.val, "description"); ok {
				pu.Description = d
			} else {
				good = false
			}
		}
		if e, ok := m["legal_bases"]; ok {
			bases, nodes, ok := p.stringList(e.val, "legal_bases")
			good = good && ok
			for i, b := range bases {
				if !slices.Contains(LegalBases, b) {
					p.nodeErrorf(nodes[i], "unknown legal basis %s: allowed values are %s", quote(b), strings.Join(LegalBases, ", "))
					good = false
				}
			}
			if ok && len(bases) == 0 {
				p.nodeErrorf(e.val, "legal_bases is empty, so nothing could allow the purpose: list at least one, or omit it for [%s]", LegalBasisConsent)
				good = false
			}
			pu.LegalBases = bases
		}
		if e, ok := m["opt_out"]; ok {
			var b bool
			if !p.usable(e.val) {
				good = false
			} else if e.val.Kind != yaml.ScalarNode || e.val.Tag != "!!bool" || e.val.Decode(&b) != nil {
				p.nodeErrorf(e.val, "opt_out must be true or false")
				good = false
			}
			pu.OptOut = b
		}
		if good {
			out = append(out, pu)
		}
	}
	return out
}

// streams reads the streams list against the declared purposes.
func (p *parser) streams(n *yaml.Node, purposes map[string]int) []Stream {
	items, ok := p.list(n, "streams")
	if !ok {
		return nil
	}
	var out []Stream
	topics := map[string]int{}
	for _, it := range items {
		m, ok := p.mapping(it, "stream", streamKeys)
		if !ok {
			continue
		}
		s, good := p.stream(it, m, purposes)
		if s.Topic != "" {
			if first, dup := topics[s.Topic]; dup {
				at := it
				if e, ok := m["topic"]; ok {
					at = e.val
				}
				p.nodeErrorf(at, "duplicate topic %s (first at line %d)", quote(s.Topic), first)
				good = false
			} else {
				topics[s.Topic] = it.Line
			}
		}
		if good {
			out = append(out, s)
		}
	}
	return out
}

// stream reads one stream mapping.
func (p *parser) stream(it *yaml.Node, m map[string]entry, purposes map[string]int) (Stream, bool) {
	s := Stream{
		Line:             it.Line,
		OnMissing:        OnMissingDrop,
		Unannotated:      UnannotatedKeep,
		Excluded:         ExcludedRemove,
		DefaultTreatment: ActionRemove,
	}
	good := true
	if e, ok := m["purposes"]; !ok {
		p.nodeErrorf(it, "stream has no purposes: list the purposes every event on it must be allowed for")
		good = false
	} else {
		ids, nodes, ok := p.stringList(e.val, "stream purposes")
		good = good && ok
		if ok && len(ids) == 0 {
			p.nodeErrorf(e.val, "stream has no purposes: list the purposes every event on it must be allowed for")
			good = false
		}
		for i, id := range ids {
			if _, known := purposes[id]; !known {
				p.nodeErrorf(nodes[i], "stream names unknown purpose %s: declare it under purposes", quote(id))
				good = false
			}
		}
		s.Purposes = ids
	}
	if e, ok := m["topic"]; ok {
		if t, ok := p.scalar(e.val, "topic"); !ok {
			good = false
		} else if !topicSyntax.MatchString(t) || t == "." || t == ".." {
			p.nodeErrorf(e.val, "bad topic %s: a Kafka topic name is 1 to 249 of a-z A-Z 0-9 . _ -", quote(t))
			good = false
		} else {
			s.Topic = t
		}
	} else if len(s.Purposes) > 0 {
		s.Topic = "compliant." + s.Purposes[0]
		if !topicSyntax.MatchString(s.Topic) {
			s.Topic = "" // the bad purpose id is reported already
		}
	}
	if e, ok := m["description"]; ok && !isNull(e.val) {
		if d, ok := p.text(e.val, "stream description"); ok {
			s.Description = d
		} else {
			good = false
		}
	}
	if e, ok := m["recipients"]; ok {
		names, nodes, ok := p.stringList(e.val, "recipients")
		good = good && ok
		for i, name := range names {
			if !recipientSyntax.MatchString(name) {
				p.nodeErrorf(nodes[i], "bad recipient %s: a name of 1 to 64 letters, digits, spaces and . _ / -, starting and ending with a letter or digit, as in braze or marketing-team", quote(name))
				good = false
			}
		}
		if len(names) > 0 {
			s.Recipients = names
		}
	}
	if e, ok := m["schemas"]; ok {
		names, nodes, ok := p.stringList(e.val, "schemas")
		good = good && ok
		for i, name := range names {
			if !schemaNameSyntax.MatchString(name) {
				p.nodeErrorf(nodes[i], "bad schema name %s: give the full Avro name, as in consentgate.events.Purchase", quote(name))
				good = false
			}
		}
		if len(names) > 0 {
			s.Schemas = names
		}
	}
	if e, ok := m["on_missing_consent"]; ok {
		v, ok := p.oneOf(e.val, "on_missing_consent", []string{string(OnMissingDrop), string(OnMissingRedact)})
		good = good && ok
		s.OnMissing = OnMissing(v)
	}
	if e, ok := m["unannotated_fields"]; ok {
		v, ok := p.oneOf(e.val, "unannotated_fields", []string{UnannotatedKeep, UnannotatedRemove})
		good = good && ok
		s.Unannotated = v
	}
	if e, ok := m["excluded_categories"]; ok {
		v, ok := p.oneOf(e.val, "excluded_categories", []string{ExcludedRemove, ExcludedDrop})
		good = good && ok
		s.Excluded = v
	}
	if e, ok := m["default_treatment"]; ok {
		v, ok := p.oneOf(e.val, "default_treatment", actionNames())
		good = good && ok
		s.DefaultTreatment = Action(v)
	}
	if e, ok := m["google_consent_mode"]; ok {
		b, ok := p.boolean(e.val, "google_consent_mode")
		good = good && ok
		s.GoogleConsentMode = b
	}
	if e, ok := m["treatments"]; ok {
		ts, ok := p.treatments(e.val)
		good = good && ok
		s.Treatments = ts
	}
	return s, good
}

// treatments reads a stream's treatment rules and rejects rules that can
// never match because an earlier rule always matches first.
func (p *parser) treatments(n *yaml.Node) ([]Treatment, bool) {
	items, ok := p.list(n, "treatments")
	if !ok {
		return nil, false
	}
	good := true
	var out []Treatment
	for _, it := range items {
		m, ok := p.mapping(it, "treatment", treatmentKeys)
		if !ok {
			good = false
			continue
		}
		t := Treatment{Line: it.Line}
		ok = true
		cat, hasCat := m["category"]
		field, hasField := m["field"]
		switch {
		case hasCat && hasField:
			p.nodeErrorf(it, "treatment has both category and field: give one per rule")
			ok = false
		case !hasCat && !hasField:
			p.nodeErrorf(it, "treatment has neither category nor field: give one per rule")
			ok = false
		case hasCat:
			ok = p.categoryRule(cat.val, &t, out)
		default:
			ok = p.fieldRule(field.val, &t, out)
		}
		if e, has := m["action"]; !has {
			p.nodeErrorf(it, "treatment has no action (allowed values are %s)", strings.Join(actionNames(), ", "))
			ok = false
		} else if v, vok := p.oneOf(e.val, "action", actionNames()); !vok {
			ok = false
		} else {
			t.Action = Action(v)
		}
		if e, has := m["encryption"]; has {
			if t.Action != "" && t.Action != ActionEncrypt {
				p.nodeErrorf(e.key, "encryption is only for action encrypt, not %s: remove the key, or use action: encrypt", t.Action)
				ok = false
			} else if v, vok := p.oneOf(e.val, "encryption", encryptionNames()); !vok {
				ok = false
			} else {
				t.Encryption = Encryption(v)
			}
		} else if t.Action == ActionEncrypt {
			t.Encryption = EncryptRandomised
		}
		if ok {
			out = append(out, t)
		}
		good = good && ok
	}
	return out, good
}

func (p *parser) categoryRule(n *yaml.Node, t *Treatment, earlier []Treatment) bool {
	pat, ok := p.scalar(n, "category")
	if !ok {
		return false
	}
	if !patternSyntax.MatchString(pat) || !knownPattern(pat) {
		p.nodeErrorf(n, "unknown data category pattern %s: it matches none of the known categories (%s); "+
			"a pattern is a category, a prefix such as user.contact.*, or *", quote(pat), strings.Join(Categories, ", "))
		return false
	}
	for _, e := range earlier {
		if e.Category != "" && patternCovers(e.Category, pat) {
			p.nodeErrorf(n, "treatment for category %s never applies: the rule at line %d (category %s) matches first", quote(pat), e.Line, quote(e.Category))
			return false
		}
	}
	t.Category = pat
	return true
}

func (p *parser) fieldRule(n *yaml.Node, t *Treatment, earlier []Treatment) bool {
	path, ok := p.scalar(n, "field")
	if !ok {
		return false
	}
	if !fieldPathSyntax.MatchString(path) {
		p.nodeErrorf(n, "bad field path %s: field names joined by dots, with [] after an array field, as in items[].sku", quote(path))
		return false
	}
	for _, e := range earlier {
		if e.Field == path {
			p.nodeErrorf(n, "duplicate treatment for field %s (first at line %d)", quote(path), e.Line)
			return false
		}
	}
	t.Field = path
	return true
}

// suggest returns the allowed word closest to s when it is close enough to
// be a typo, or "".
func suggest(s string, allowed []string) string {
	best, bestDist := "", 3
	if len(s) > 40 {
		return ""
	}
	for _, a := range allowed {
		if d := EditDistance(s, a); d < bestDist {
			best, bestDist = a, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance between a and b (bytes), for
// "did you mean" suggestions.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
