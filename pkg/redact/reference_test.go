package redact

import (
	"slices"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
)

// This file keeps the walker Apply used before treatments were compiled
// (compile.go): it decides every field's action while it walks, from the
// request. It is the reference the compiled programs are checked against
// (TestCompiledMatchesReference).

// refApply is Apply with the reference walker.
func (r *Redactor) refApply(req Request) (Result, error) {
	if r == nil || !r.ready {
		return Result{}, ErrNotReady
	}
	if req.Schema == nil {
		return Result{}, ErrNoSchema
	}
	if req.Mode != ModeRedact && req.Mode != ModeRemoveExcluded {
		return Result{}, ErrBadMode
	}
	root, err := r.plan(req.Schema)
	if err != nil {
		return Result{}, err
	}
	if req.Value == nil {
		return Result{}, mismatch(root, nil)
	}
	w := refWalker{r: r, req: &req, excl: decision.NewExclusions(req.Excluded)}
	if req.Writer != nil && req.Writer != req.Schema {
		w.cats = decision.FieldsOf(req.Writer, req.Schema).FieldCategories
	}
	out, err := w.record(root, req.Value, "")
	if err != nil {
		return Result{}, err
	}
	slices.Sort(w.treated)
	return Result{Value: out, Treated: slices.Compact(w.treated)}, nil
}

// refWalker is the state of one Apply call.
type refWalker struct {
	r       *Redactor
	req     *Request
	excl    decision.Exclusions
	cats    map[*avrocodec.RecordField][]string // reader field -> writer and reader categories
	treated []string
}

func (w *refWalker) mark(path string) { w.treated = append(w.treated, path) }

// categories returns the data categories field f is judged by: its own,
// and the writer's annotations of the fields it is read from
// (Request.Writer), wherever it occurs in the value.
func (w *refWalker) categories(f *fieldNode) []string {
	if c, ok := w.cats[f.def]; ok {
		return c
	}
	if f.def.Category == "" {
		return nil
	}
	return []string{f.def.Category}
}

// action decides the treatment of field f; inherit is the transforming
// treatment of the closest enclosing field, if any.
func (w *refWalker) action(f *fieldNode, inherit policy.Action) policy.Action {
	cats := w.categories(f)
	if _, ok := w.excl.CoversAny(cats); ok {
		return policy.ActionRemove
	}
	// The decision of a field's action is shared with the compiled
	// programs (fieldAction): what this reference checks is the compiled
	// walk; the actions are checked against the documentation by the
	// oracle of FuzzRedactNeverLeaks and by the table tests.
	return fieldAction(&w.req.Stream, w.req.Mode, f.path, cats, inherit)
}

// record treats every field of the record value v; inherit is passed to the
// fields (see action).
func (w *refWalker) record(n *node, v any, inherit policy.Action) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok || m == nil {
		return nil, mismatch(n, v)
	}
	n.children()
	out := make(map[string]any, len(n.fields))
	for _, f := range n.fields {
		fv, present := m[f.def.Name]
		if !present {
			continue // the encoder uses the schema default, a constant
		}
		nv, err := w.field(f, fv, inherit)
		if err != nil {
			return nil, err
		}
		out[f.def.Name] = nv
	}
	return out, nil
}

// field treats one field value.
func (w *refWalker) field(f *fieldNode, v any, inherit policy.Action) (any, error) {
	a := w.action(f, inherit)
	if a == policy.ActionRemove {
		return w.remove(f, v)
	}
	mark := len(w.treated)
	out, changed, ok, err := w.value(f.node, v, a)
	if err != nil {
		return nil, err
	}
	if !ok {
		// The treatment does not apply to this value (a non-string to
		// pseudonymise, a non-IP to truncate, ...): remove the field.
		w.treated = w.treated[:mark]
		return w.remove(f, v)
	}
	if changed {
		w.mark(f.path)
	}
	return out, nil
}

// remove returns the removal value of field f (see removed).
func (w *refWalker) remove(f *fieldNode, v any) (any, error) {
	out, err := removed(f.def)
	if err != nil {
		return nil, err
	}
	if !same(v, out) {
		w.mark(f.path)
	}
	return out, nil
}

// value applies a (keep or a transforming treatment) to v of type n. Records
// below recurse with their own fields (a is inherited by those without a
// category); arrays, maps and unions apply a to their items, values and
// branch. changed reports whether a value not inside a nested record was
// rewritten (nested records mark their own fields); ok is false when a does
// not apply to v or to one of its items, and the enclosing field must be
// removed instead.
func (w *refWalker) value(n *node, v any, a policy.Action) (out any, changed, ok bool, err error) {
	switch n.t.Kind {
	case avrocodec.KindRecord:
		inherit := policy.Action("")
		if transforming(a) {
			inherit = a
		}
		rec, err := w.record(n, v, inherit)
		if err != nil {
			return nil, false, false, err
		}
		return rec, false, true, nil
	case avrocodec.KindUnion:
		if v == nil {
			if !n.t.Nullable() {
				return nil, false, false, mismatch(n, v)
			}
			return nil, false, true, nil
		}
		m, isMap := v.(map[string]any)
		if !isMap || len(m) != 1 {
			return nil, false, false, mismatch(n, v)
		}
		n.children()
		for key, inner := range m {
			i := n.t.BranchIndex(key)
			if i < 0 {
				return nil, false, false, &MismatchError{Path: n.path, Want: "union", Got: "a union value of another type"}
			}
			o, ch, ok, err := w.value(n.branches[i], inner, a)
			if err != nil || !ok {
				return nil, false, ok, err
			}
			return map[string]any{key: o}, ch, true, nil
		}
	case avrocodec.KindArray:
		arr, isArr := v.([]any)
		if !isArr {
			return nil, false, false, mismatch(n, v)
		}
		n.children()
		res := make([]any, len(arr))
		for i, item := range arr {
			o, ch, ok, err := w.value(n.items, item, a)
			if err != nil || !ok {
				return nil, false, ok, err
			}
			res[i] = o
			changed = changed || ch
		}
		return res, changed, true, nil
	case avrocodec.KindMap:
		mv, isMap := v.(map[string]any)
		if !isMap {
			return nil, false, false, mismatch(n, v)
		}
		n.children()
		res := make(map[string]any, len(mv))
		hashKeys := transforming(a) && !encrypting(a)
		for k, item := range mv {
			o, ch, ok, err := w.value(n.values, item, a)
			if err != nil || !ok {
				return nil, false, ok, err
			}
			if encrypting(a) {
				ek, ok, err := encryptKey(w.req.Keys, n, k)
				if err != nil || !ok {
					return nil, false, ok, err
				}
				k, ch = ek, true
			}
			if hashKeys {
				if w.r.noKey {
					return nil, false, false, ErrNoKey
				}
				k = w.r.pseudonym(k)
				ch = true
			}
			res[k] = o
			changed = changed || ch
		}
		return res, changed, true, nil
	}
	return w.leaf(n, v, a)
}

// leaf applies a to a value of a primitive, enum or fixed type.
func (w *refWalker) leaf(n *node, v any, a policy.Action) (out any, changed, ok bool, err error) {
	if a == policy.ActionKeep {
		return copyLeaf(v), false, true, nil
	}
	if n.t.Kind == avrocodec.KindNull {
		return nil, false, true, nil
	}
	if encrypting(a) {
		return encryptLeaf(w.req.Keys, n, v, a)
	}
	switch a {
	case policy.ActionPseudonymise, policy.ActionMask, policy.ActionTruncateIP:
		if n.t.Kind != avrocodec.KindString {
			return nil, false, false, nil
		}
		s, isStr := v.(string)
		if !isStr {
			return nil, false, false, mismatch(n, v)
		}
		var res string
		switch a {
		case policy.ActionPseudonymise:
			if w.r.noKey {
				return nil, false, false, ErrNoKey
			}
			res = w.r.pseudonym(s)
		case policy.ActionMask:
			res = mask(s)
		default:
			if res, ok = truncateIP(s); !ok {
				return nil, false, false, nil
			}
		}
		return res, res != s, true, nil
	case policy.ActionGeneraliseHour, policy.ActionGeneraliseDay:
		if n.t.Kind != avrocodec.KindLong && n.t.Kind != avrocodec.KindInt {
			return nil, false, false, nil
		}
		unit := time.Hour
		if a == policy.ActionGeneraliseDay {
			unit = 24 * time.Hour
		}
		res, ok := generalise(v, n.t.Logical, unit)
		if !ok {
			return nil, false, false, nil
		}
		return res, !same(v, res), true, nil
	}
	return nil, false, false, nil
}
