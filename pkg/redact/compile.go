package redact

import (
	"slices"
	"strings"
	"sync"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
)

// Apply does not decide treatments while it walks a value: for each
// (schema, writer schema, stream settings, mode, excluded patterns) it
// compiles a program once, a tree of cnodes that mirrors the schema's nodes
// (schema.go) and holds, for every field, the action Apply takes on it, and
// reuses it for every event with the same settings. The walk then only
// follows the value. Programs are built lazily along the value (a recursive
// type unrolls only as deep as the data goes) and are safe for concurrent
// use.

// maxPrograms bounds the program cache of a Redactor. Requests of one
// policy share a handful of programs (schemas × streams × modes × the
// exclusion sets subjects use); when a policy reload or unusual exclusion
// sets fill the cache, it is emptied and refilled.
const maxPrograms = 4096

// programKey identifies the settings of a program. Streams are compared
// by their Treatments slice (the pointer to its first element and its
// length) and then, on a hit, by content, so that a stream whose rules were
// changed in place does not reuse a stale program.
type programKey struct {
	schema, writer *avrocodec.Schema
	mode           Mode
	unannotated    string
	def            policy.Action
	treat          *policy.Treatment
	ntreat         int
	excluded       string // the patterns, joined by NUL
}

// program is one compiled treatment.
type program struct {
	treatments []policy.Treatment // the stream's rules the program was made with
	excluded   []string
	root       *cnode
}

// settings is what a program's actions are decided from.
type settings struct {
	stream policy.Stream
	mode   Mode
	excl   decision.Exclusions
	cats   map[*avrocodec.RecordField][]string // reader field -> writer and reader categories
}

// cnode is a node (a type at a field path) with the treatment a applied
// along it: keep, or a transforming action inherited from the enclosing
// field; for a record, its fields with their actions.
type cnode struct {
	n   *node
	a   policy.Action
	set *settings

	once     sync.Once
	fields   []cfield // record
	items    *cnode   // array
	values   *cnode   // map
	branches []*cnode // union
	keys     []string // union: goavro's key of each branch
}

// cfield is one record field and the action taken on it.
type cfield struct {
	f      *fieldNode
	action policy.Action
	node   *cnode // nil when action is remove
	// removal is the field's removal value when it is immutable (null,
	// a number, a string, a time...) and can be shared by every result;
	// shared says so. Other removal values are built per event.
	removal any
	shared  bool
}

// build makes c's children once.
func (c *cnode) build() {
	c.once.Do(func() {
		n := c.n.children()
		switch n.t.Kind {
		case avrocodec.KindRecord:
			inherit := policy.Action("")
			if transforming(c.a) {
				inherit = c.a
			}
			c.fields = make([]cfield, len(n.fields))
			for i, f := range n.fields {
				a := c.set.action(f, inherit)
				c.fields[i] = cfield{f: f, action: a}
				if immutable(f.def.Type) {
					if v, err := removed(f.def); err == nil {
						c.fields[i].removal, c.fields[i].shared = v, true
					}
				}
				if a != policy.ActionRemove {
					c.fields[i].node = &cnode{n: f.node, a: a, set: c.set}
				}
			}
		case avrocodec.KindArray:
			c.items = &cnode{n: n.items, a: c.a, set: c.set}
		case avrocodec.KindMap:
			c.values = &cnode{n: n.values, a: c.a, set: c.set}
		case avrocodec.KindUnion:
			c.branches = make([]*cnode, len(n.branches))
			c.keys = make([]string, len(n.branches))
			for i, b := range n.branches {
				c.branches[i] = &cnode{n: b, a: c.a, set: c.set}
				c.keys[i] = b.t.UnionKey()
			}
		}
	})
}

// program returns the compiled program for req's settings. The error is
// ErrNoSchema when the schema has no model.
func (r *Redactor) program(req *Request) (*program, error) {
	k := programKey{
		schema: req.Schema, mode: req.Mode,
		unannotated: req.Stream.Unannotated, def: req.Stream.DefaultTreatment,
		ntreat: len(req.Stream.Treatments),
	}
	if req.Writer != nil && req.Writer != req.Schema {
		k.writer = req.Writer
	}
	if len(req.Stream.Treatments) > 0 {
		k.treat = &req.Stream.Treatments[0]
	}
	switch len(req.Excluded) {
	case 0:
	case 1:
		k.excluded = req.Excluded[0]
	default:
		k.excluded = strings.Join(req.Excluded, "\x00")
	}
	r.progMu.RLock()
	p, ok := r.progs[k]
	r.progMu.RUnlock()
	if ok && slices.Equal(p.treatments, req.Stream.Treatments) && slices.Equal(p.excluded, req.Excluded) {
		return p, nil
	}
	root, err := r.plan(req.Schema)
	if err != nil {
		return nil, err
	}
	set := &settings{stream: req.Stream, mode: req.Mode, excl: decision.NewExclusions(req.Excluded)}
	set.stream.Treatments = slices.Clone(req.Stream.Treatments)
	if k.writer != nil {
		set.cats = decision.FieldsOf(req.Writer, req.Schema).FieldCategories
	}
	p = &program{treatments: set.stream.Treatments, excluded: slices.Clone(req.Excluded), root: &cnode{n: root, set: set}}
	r.progMu.Lock()
	if r.progs == nil || len(r.progs) >= maxPrograms {
		r.progs = map[programKey]*program{}
	}
	r.progs[k] = p
	r.progMu.Unlock()
	return p, nil
}

// categories returns the data categories field f is judged by: its own,
// and the writer's annotations of the fields it is read from
// (Request.Writer), wherever it occurs in the value.
func (s *settings) categories(f *fieldNode) []string {
	if c, ok := s.cats[f.def]; ok {
		return c
	}
	if f.def.Category == "" {
		return nil
	}
	return []string{f.def.Category}
}

// action decides the treatment of field f; inherit is the transforming
// treatment of the closest enclosing field, if any.
func (s *settings) action(f *fieldNode, inherit policy.Action) policy.Action {
	cats := s.categories(f)
	if _, ok := s.excl.CoversAny(cats); ok {
		return policy.ActionRemove
	}
	return fieldAction(&s.stream, s.mode, f.path, cats, inherit)
}

// fieldAction decides the treatment of the field at path with categories
// cats (not excluded) on stream st in mode; inherit is the transforming
// treatment of the closest enclosing field, if any. The result is keep,
// remove, or a transforming action (encrypt deterministic as
// actEncryptDeterministic).
func fieldAction(st *policy.Stream, mode Mode, path string, cats []string, inherit policy.Action) policy.Action {
	var a policy.Action
	switch {
	case mode == ModeRemoveExcluded:
		// Encrypt rules apply on every output.
		if e, ok := everyOutputEncryption(st, path, cats); ok {
			a = e
			break
		}
		a = policy.ActionKeep
		if len(cats) == 0 && st.Unannotated == policy.UnannotatedRemove {
			a = st.TreatmentFor(path, "")
		}
	case len(cats) == 0 && inherit != "":
		a = inherit
		if r, ok := fieldRuleFor(st, path); ok {
			a = r
		}
	case len(cats) == 0:
		a = treatmentFor(st, path, "")
	default:
		// A field with two categories (the writer's and the reader's)
		// takes the treatment both agree on, else it is removed.
		a = treatmentFor(st, path, cats[0])
		for _, c := range cats[1:] {
			if treatmentFor(st, path, c) != a {
				a = policy.ActionRemove
			}
		}
	}
	if a != policy.ActionKeep && !transforming(a) {
		return policy.ActionRemove // remove, or an action this package does not know
	}
	if encrypting(inherit) && a != policy.ActionRemove && !encrypting(a) {
		// Inside an encrypted field every value is encrypted or removed,
		// whatever its own category's rule, so that an erasure leaves
		// nothing of it readable.
		a = inherit
	}
	return a
}

// treatmentFor is Stream.TreatmentFor with encrypt deterministic told
// apart (a default_treatment of encrypt is randomised).
func treatmentFor(st *policy.Stream, path, cat string) policy.Action {
	a := st.TreatmentFor(path, cat)
	if a == policy.ActionEncrypt {
		if e, ok := st.EncryptionFor(path, cat); ok {
			return encryptAction(a, e)
		}
	}
	return a
}

// fieldRuleFor returns the action of the first field rule for exactly
// path.
func fieldRuleFor(st *policy.Stream, path string) (policy.Action, bool) {
	for _, t := range st.Treatments {
		if t.Field != "" && t.Field == path {
			return encryptAction(t.Action, t.Encryption), true
		}
	}
	return "", false
}

// everyOutputEncryption reports whether the field is encrypted on every
// output (policy.Stream.EncryptionFor, for its path and any of its
// categories: fail closed), and how: deterministically only when every
// category that meets an encrypt rule first meets a deterministic one.
func everyOutputEncryption(st *policy.Stream, path string, cats []string) (policy.Action, bool) {
	if len(cats) == 0 {
		e, ok := st.EncryptionFor(path, "")
		return encryptAction(policy.ActionEncrypt, e), ok
	}
	found, det := false, true
	for _, c := range cats {
		if e, ok := st.EncryptionFor(path, c); ok {
			found = true
			det = det && e == policy.EncryptDeterministic
		}
	}
	if !found {
		return "", false
	}
	if det {
		return actEncryptDeterministic, true
	}
	return policy.ActionEncrypt, true
}

// immutable reports whether the removal value of a field of type t holds
// no reference that a caller could modify: nil, a boolean, a number, a
// string, an enum symbol, a time or a duration.
func immutable(t *avrocodec.Type) bool {
	if t.Nullable() {
		return true // null
	}
	switch t.Kind {
	case avrocodec.KindNull, avrocodec.KindBoolean, avrocodec.KindInt, avrocodec.KindLong,
		avrocodec.KindFloat, avrocodec.KindDouble, avrocodec.KindString, avrocodec.KindEnum:
		return true
	}
	return false
}
