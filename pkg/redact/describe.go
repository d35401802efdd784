package redact

import (
	"slices"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

// FieldAction is what Apply does to one field of a schema for one set of
// settings (see Actions).
type FieldAction struct {
	// Path is the field's path in the reader schema (Request.Schema), in
	// the syntax of avrocodec.Schema.Annotations.
	Path string
	// Categories are the data categories the field is judged by: its own
	// and, with Request.Writer, the writer's annotation of the field it is
	// read from. Empty for an unannotated field.
	Categories []string
	// Action is keep, remove or a rewriting action (pseudonymise, mask,
	// truncate_ip, generalise_*, encrypt).
	Action policy.Action
	// Encryption is the mode of an encrypt Action; empty for the others.
	Encryption policy.Encryption
	// Within is the path of the enclosing field that is removed whole when
	// the field goes with it (Action is then remove); empty otherwise.
	Within string
}

// Actions returns the action Apply takes on every field of req.Schema
// under req's settings (Writer, Stream, Excluded, Mode; Value is not
// used): it lists the compiled program that Apply runs, depth first in
// schema order, so it says exactly what Apply does, never a second
// reading of the rules. A recursive type is listed once, at its first
// depth. A field below one that is removed whole is listed as removed, with
// Within naming that field.
//
// The actions are those the rules choose. When Apply runs, a rewriting
// action that does not apply to a value (pseudonymise on a number,
// truncate_ip on a string that is no IP address, encrypt on a number or
// without a data key, ...) falls back to remove,
// and a record under a rewriting action still has its unannotated
// sub-fields listed with the inherited action. The error is ErrNoSchema,
// ErrBadMode or ErrNotReady, as for Apply.
func (r *Redactor) Actions(req Request) ([]FieldAction, error) {
	if r == nil || !r.ready {
		return nil, ErrNotReady
	}
	if req.Schema == nil {
		return nil, ErrNoSchema
	}
	if req.Mode != ModeRedact && req.Mode != ModeRemoveExcluded {
		return nil, ErrBadMode
	}
	p, err := r.program(&req)
	if err != nil {
		return nil, err
	}
	l := lister{set: p.root.set, onPath: map[*avrocodec.Type]bool{}}
	l.program(p.root)
	return l.out, nil
}

type lister struct {
	set    *settings
	onPath map[*avrocodec.Type]bool // records on the current path
	out    []FieldAction
}

func (l *lister) add(fa FieldAction) {
	// Union branches share paths: list a path once per action.
	if slices.ContainsFunc(l.out, func(o FieldAction) bool {
		return o.Path == fa.Path && o.Action == fa.Action && o.Encryption == fa.Encryption && o.Within == fa.Within
	}) {
		return
	}
	l.out = append(l.out, fa)
}

// program lists the fields of a compiled node.
func (l *lister) program(c *cnode) {
	c.build()
	switch c.n.t.Kind {
	case avrocodec.KindRecord:
		if l.onPath[c.n.t] {
			return
		}
		l.onPath[c.n.t] = true
		defer delete(l.onPath, c.n.t)
		for _, f := range c.fields {
			fa := FieldAction{Path: f.f.path, Categories: slices.Clone(l.set.categories(f.f)), Action: f.action}
			switch f.action {
			case actEncryptDeterministic:
				fa.Action, fa.Encryption = policy.ActionEncrypt, policy.EncryptDeterministic
			case policy.ActionEncrypt:
				fa.Encryption = policy.EncryptRandomised
			}
			l.add(fa)
			if f.node != nil {
				l.program(f.node)
			} else {
				l.removed(f.f.node, f.f.path)
			}
		}
	case avrocodec.KindArray:
		l.program(c.items)
	case avrocodec.KindMap:
		l.program(c.values)
	case avrocodec.KindUnion:
		for _, b := range c.branches {
			l.program(b)
		}
	}
}

// removed lists the fields below a field removed whole.
func (l *lister) removed(n *node, within string) {
	n.children()
	switch n.t.Kind {
	case avrocodec.KindRecord:
		if l.onPath[n.t] {
			return
		}
		l.onPath[n.t] = true
		defer delete(l.onPath, n.t)
		for _, f := range n.fields {
			l.add(FieldAction{Path: f.path, Categories: slices.Clone(l.set.categories(f)), Action: policy.ActionRemove, Within: within})
			l.removed(f.node, within)
		}
	case avrocodec.KindArray:
		l.removed(n.items, within)
	case avrocodec.KindMap:
		l.removed(n.values, within)
	case avrocodec.KindUnion:
		for _, b := range n.branches {
			l.removed(b, within)
		}
	}
}
