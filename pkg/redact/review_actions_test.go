package redact

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

// actionsChecker walks an input value and Apply's output of it along the
// schema and holds every field occurrence against what Actions lists for
// its path.
type actionsChecker struct {
	t      *testing.T
	r      *Redactor
	req    Request
	byPath map[string][]policy.Action
	errs   []string
	// checked counts the field occurrences compared, by listed action.
	checked map[policy.Action]int
}

func (c *actionsChecker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// record compares the fields of one record value.
func (c *actionsChecker) record(n *node, in, out map[string]any, depth int) {
	n.children()
	for _, f := range n.fields {
		iv, present := in[f.def.Name]
		if !present {
			continue
		}
		ov, ok := out[f.def.Name]
		if !ok {
			c.errorf("%s: present in the input, absent from Apply's output", f.path)
			continue
		}
		acts := c.byPath[f.path]
		if len(acts) == 0 {
			if depth > 0 {
				continue // a recursive type is listed at its first depth only
			}
			c.errorf("%s: Apply treats the field, Actions does not list it", f.path)
			continue
		}
		c.field(f, iv, ov, acts, depth)
	}
}

// field compares one field occurrence with the actions listed for its path.
func (c *actionsChecker) field(f *fieldNode, iv, ov any, acts []policy.Action, depth int) {
	keep := slices.Contains(acts, policy.ActionKeep)
	switch {
	case len(acts) == 1 && keep:
		c.checked[policy.ActionKeep]++
		if !sameDirect(f.node, iv, ov) {
			c.errorf("%s: Actions says keep, Apply changed the value", f.path)
		}
	case !keep:
		c.checked[acts[0]]++
		if hasDirect(f.node, iv, acts) && sameDirect(f.node, iv, ov) && !removedLike(f.def, iv) {
			c.errorf("%s: Actions says %v, Apply published the value unchanged", f.path, acts)
		}
	}
	if removedLike(f.def, ov) && !removedLike(f.def, iv) {
		return // removed whole (by its action, or falling back to remove)
	}
	var inherit policy.Action
	if len(acts) == 1 && transforming(acts[0]) {
		inherit = acts[0]
	}
	c.descend(f.node, iv, ov, inherit, depth)
}

// descend pairs the input and output values of n and compares the records
// inside them.
func (c *actionsChecker) descend(n *node, in, out any, inherit policy.Action, depth int) {
	n.children()
	switch n.t.Kind {
	case avrocodec.KindRecord:
		im, _ := in.(map[string]any)
		om, ok := out.(map[string]any)
		if ok && im != nil {
			c.record(n, im, om, depth+1)
		}
	case avrocodec.KindUnion:
		im, ok1 := in.(map[string]any)
		om, ok2 := out.(map[string]any)
		if !ok1 || !ok2 {
			return
		}
		for k, iv := range im {
			if i := n.t.BranchIndex(k); i >= 0 {
				if ov, ok := om[k]; ok {
					c.descend(n.branches[i], iv, ov, inherit, depth)
				}
			}
		}
	case avrocodec.KindArray:
		ia, _ := in.([]any)
		oa, _ := out.([]any)
		if len(ia) == len(oa) {
			for i := range ia {
				c.descend(n.items, ia[i], oa[i], inherit, depth)
			}
		}
	case avrocodec.KindMap:
		im, _ := in.(map[string]any)
		om, _ := out.(map[string]any)
		for k, iv := range im {
			if ov, found := om[mapKey(c.r, c.req, inherit, k)]; found {
				c.descend(n.values, iv, ov, inherit, depth)
			}
		}
	}
}

// sameDirect reports whether a and b, values of n, are equal outside the
// records nested in them (those are compared field by field): leaves,
// union branches, array items, map keys and values.
func sameDirect(n *node, a, b any) bool {
	n.children()
	switch n.t.Kind {
	case avrocodec.KindRecord:
		_, ok1 := a.(map[string]any)
		_, ok2 := b.(map[string]any)
		return ok1 == ok2
	case avrocodec.KindUnion:
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		am, ok1 := a.(map[string]any)
		bm, ok2 := b.(map[string]any)
		if !ok1 || !ok2 || len(am) != 1 || len(bm) != 1 {
			return false
		}
		for k, av := range am {
			bv, ok := bm[k]
			i := n.t.BranchIndex(k)
			return ok && i >= 0 && sameDirect(n.branches[i], av, bv)
		}
	case avrocodec.KindArray:
		aa, ok1 := a.([]any)
		ba, ok2 := b.([]any)
		if !ok1 || !ok2 || len(aa) != len(ba) {
			return false
		}
		for i := range aa {
			if !sameDirect(n.items, aa[i], ba[i]) {
				return false
			}
		}
		return true
	case avrocodec.KindMap:
		am, ok1 := a.(map[string]any)
		bm, ok2 := b.(map[string]any)
		if !ok1 || !ok2 || len(am) != len(bm) {
			return false
		}
		for k, av := range am {
			bv, ok := bm[k]
			if !ok || !sameDirect(n.values, av, bv) {
				return false
			}
		}
		return true
	}
	return same(a, b)
}

// hasDirect reports whether v, a value of n, holds something outside its
// nested records that a treatment changes: a leaf that is not null, or a
// map key. A date under generalise_* is left out (it is already a day).
func hasDirect(n *node, v any, acts []policy.Action) bool {
	n.children()
	switch n.t.Kind {
	case avrocodec.KindNull, avrocodec.KindRecord:
		return false
	case avrocodec.KindUnion:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k, e := range m {
			if i := n.t.BranchIndex(k); i >= 0 {
				return hasDirect(n.branches[i], e, acts)
			}
		}
		return false
	case avrocodec.KindArray:
		a, _ := v.([]any)
		for _, e := range a {
			if hasDirect(n.items, e, acts) {
				return true
			}
		}
		return false
	case avrocodec.KindMap:
		m, _ := v.(map[string]any)
		return len(m) > 0
	}
	if n.t.Logical == "date" && !slices.ContainsFunc(acts, func(a policy.Action) bool {
		return a != policy.ActionGeneraliseDay && a != policy.ActionGeneraliseHour
	}) {
		return false
	}
	return v != nil
}

// TestReviewPropertyActionsSayWhatApplyDoes holds Actions (what the record
// of processing activities tells a regulator about each field) against
// Apply on random events of every schema of the repository (schemas/) and
// of the test kitchen schema (nested records, arrays, maps, unions,
// recursion), with random streams, exclusion sets, modes and writer
// schemas (another version, or one that annotates the fields differently):
//
//   - a field Actions lists as keep is published unchanged;
//   - a field Actions lists only with treatments other than keep is never
//     published unchanged (a value already equal to its removal value, a
//     date under generalise_*, aside);
//   - every field occurrence Apply walks is listed (recursive types below
//     their first depth aside), and every path Apply says it treated is
//     listed with a treatment other than keep.
//
// Where a rewriting action does not apply and Apply falls back to remove,
// Actions names the rewriting action (documented); both treat the field.
func TestReviewPropertyActionsSayWhatApplyDoes(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	all := fuzzSchemas(t)
	pats := patterns()
	cat, _ := catalogs(t)
	seed := uint64(20261202)
	if s := os.Getenv("REVIEW_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	g := &gen{rnd: rand.New(rand.NewPCG(seed, 13)), made: map[string]bool{}}
	variants := map[*avrocodec.Schema]*avrocodec.Schema{}
	for _, s := range all {
		variants[s] = recategorised(t, s, g.rnd)
	}
	checked := map[policy.Action]int{}
	failures := 0
	for it := range 3000 {
		s := all[g.rnd.IntN(len(all))]
		root, err := r.plan(s)
		if err != nil {
			t.Fatal(err)
		}
		req := g.request(s, root.t, pats)
		switch g.rnd.IntN(3) {
		case 0:
			if vs := cat.Versions(s.FullName); len(vs) > 1 {
				req.Writer = vs[g.rnd.IntN(len(vs))]
			}
		case 1:
			req.Writer = variants[s]
		}
		acts, err := r.Actions(req)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Apply(req)
		if err != nil {
			t.Fatal(err)
		}
		c := &actionsChecker{t: t, r: r, req: req, byPath: map[string][]policy.Action{}, checked: checked}
		for _, a := range acts {
			if !slices.Contains(c.byPath[a.Path], a.Action) {
				c.byPath[a.Path] = append(c.byPath[a.Path], a.Action)
			}
		}
		c.record(root, req.Value, res.Value, 0)
		for _, p := range res.Treated {
			if l := c.byPath[p]; len(l) == 0 || (len(l) == 1 && l[0] == policy.ActionKeep) {
				c.errorf("%s: Apply says it treated the field, Actions lists %v", p, l)
			}
		}
		if len(c.errs) > 0 {
			failures++
			t.Errorf("request %d (seed %d), %s (writer %v, mode %v, stream %+v, excluded %q):\n  %s",
				it, seed, s.FullName, req.Writer != nil, req.Mode, req.Stream, req.Excluded, strings.Join(c.errs, "\n  "))
			if failures >= 5 {
				t.FailNow()
			}
		}
	}
	for _, a := range policy.Actions {
		if checked[a] == 0 {
			t.Errorf("no field listed with %s was compared", a)
		}
	}
	t.Logf("field occurrences compared, by listed action: %v", checked)
}
