package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
)

// gen makes random events of a schema. Every generated string is distinctive
// (at least 12 characters, random), so that finding it in an output means
// that it was published, not that it happened to be there.
type gen struct {
	rnd  *rand.Rand
	made map[string]bool // every string generated (enum symbols are not)
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func (g *gen) word(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[g.rnd.IntN(len(alnum))]
	}
	return string(b)
}

func (g *gen) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.rnd.IntN(10))
	}
	return string(b)
}

func (g *gen) octet() int { return 100 + g.rnd.IntN(155) }

func (g *gen) str() string {
	s := g.shape()
	g.made[s] = true
	return s
}

func (g *gen) shape() string {
	switch g.rnd.IntN(6) {
	case 0:
		return g.word(8) + "@" + g.word(8) + ".example"
	case 1:
		return "+" + g.digits(2) + " " + g.digits(3) + " " + g.digits(7)
	case 2:
		return g.digits(4) + " " + g.digits(4) + " " + g.digits(4) + " " + g.digits(4)
	case 3:
		return fmt.Sprintf("%d.%d.%d.%d", g.octet(), g.octet(), g.octet(), g.octet())
	case 4:
		return fmt.Sprintf("2001:db8:%x:%x::%x", 0x1000+g.rnd.IntN(0xefff), 0x1000+g.rnd.IntN(0xefff), 0x1000+g.rnd.IntN(0xefff))
	default:
		return g.word(12 + g.rnd.IntN(8))
	}
}

func (g *gen) value(t *avrocodec.Type) any {
	switch t.Kind {
	case avrocodec.KindNull:
		return nil
	case avrocodec.KindBoolean:
		return g.rnd.IntN(2) == 1
	case avrocodec.KindInt:
		switch t.Logical {
		case "date":
			return time.Date(1950+g.rnd.IntN(80), time.Month(1+g.rnd.IntN(12)), 1+g.rnd.IntN(28), 0, 0, 0, 0, time.UTC)
		case "time-millis":
			return time.Duration(g.rnd.IntN(86_400_000)) * time.Millisecond
		}
		return int32(1 + g.rnd.IntN(1<<30))
	case avrocodec.KindLong:
		switch t.Logical {
		case "timestamp-millis":
			return time.UnixMilli(g.rnd.Int64N(4_000_000_000_000)).UTC()
		case "timestamp-micros":
			return time.UnixMicro(g.rnd.Int64N(4_000_000_000_000_000)).UTC()
		case "time-micros":
			return time.Duration(g.rnd.Int64N(86_400_000_000)) * time.Microsecond
		}
		return 1 + g.rnd.Int64N(1<<60)
	case avrocodec.KindFloat:
		return float32(1 + g.rnd.Float32())
	case avrocodec.KindDouble:
		return 1 + g.rnd.Float64()
	case avrocodec.KindString:
		return g.str()
	case avrocodec.KindBytes:
		b := make([]byte, 1+g.rnd.IntN(8))
		for i := range b {
			b[i] = byte(1 + g.rnd.IntN(255))
		}
		return b
	case avrocodec.KindFixed:
		b := make([]byte, t.Size)
		for i := range b {
			b[i] = byte(1 + g.rnd.IntN(255))
		}
		return b
	case avrocodec.KindEnum:
		return t.Symbols[g.rnd.IntN(len(t.Symbols))]
	case avrocodec.KindArray:
		out := make([]any, g.rnd.IntN(4))
		for i := range out {
			out[i] = g.value(t.Items)
		}
		return out
	case avrocodec.KindMap:
		out := map[string]any{}
		for range g.rnd.IntN(4) {
			k := g.word(12)
			g.made[k] = true
			out[k] = g.value(t.Values)
		}
		return out
	case avrocodec.KindUnion:
		b := t.Branches[g.rnd.IntN(len(t.Branches))]
		if b.Kind == avrocodec.KindNull {
			return nil
		}
		return map[string]any{b.UnionKey(): g.value(b)}
	case avrocodec.KindRecord:
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			out[f.Name] = g.value(f.Type)
		}
		return out
	}
	panic("unknown kind " + string(t.Kind))
}

// patterns are the category patterns random streams and grants use.
func patterns() []string {
	set := map[string]bool{"*": true}
	for _, c := range policy.Categories {
		parts := strings.Split(c, ".")
		for i := 1; i <= len(parts); i++ {
			p := strings.Join(parts[:i], ".")
			set[p] = true
			if i < len(parts) {
				set[p+".*"] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (g *gen) pick(list []string) string { return list[g.rnd.IntN(len(list))] }

func (g *gen) action() policy.Action { return policy.Actions[g.rnd.IntN(len(policy.Actions))] }

func (g *gen) request(s *avrocodec.Schema, root *avrocodec.Type, pats []string) Request {
	var paths []string
	for _, fi := range s.Fields {
		paths = append(paths, fi.Path)
	}
	st := policy.Stream{Unannotated: policy.UnannotatedKeep, DefaultTreatment: g.action()}
	if g.rnd.IntN(2) == 0 {
		st.Unannotated = policy.UnannotatedRemove
	}
	for range g.rnd.IntN(6) {
		t := policy.Treatment{Action: g.action()}
		if g.rnd.IntN(2) == 0 {
			t.Category = g.pick(pats)
		} else {
			t.Field = g.pick(paths)
		}
		st.Treatments = append(st.Treatments, t)
	}
	var excluded []string
	for range g.rnd.IntN(3) {
		excluded = append(excluded, g.pick(pats))
	}
	mode := ModeRedact
	if g.rnd.IntN(3) == 0 {
		mode = ModeRemoveExcluded
	}
	for i := range st.Treatments {
		if st.Treatments[i].Action == policy.ActionEncrypt {
			st.Treatments[i].Encryption = policy.Encryptions[g.rnd.IntN(len(policy.Encryptions))]
		}
	}
	req := Request{Schema: s, Value: g.value(root).(map[string]any), Stream: st, Excluded: excluded, Mode: mode}
	if g.rnd.IntN(4) > 0 { // else no data key: fields to encrypt are removed
		req.Keys = &testKeys{tag: byte(1 + g.rnd.IntN(200))}
	}
	return req
}

// mapKey is the key Apply gives map key k of a map under action a
// (inherited from the enclosing field; "" for none).
func mapKey(r *Redactor, req Request, a policy.Action, k string) string {
	switch {
	case a == "":
		return k
	case encrypting(a):
		if keys, ok := req.Keys.(*testKeys); ok {
			return encKey(keys, k)
		}
		return k // no keys: the map was removed
	}
	return r.pseudonym(k)
}

// oracle checks a result against the rules as the package documentation
// states them, independently of the walker's code paths.
type oracle struct {
	t      *testing.T
	r      *Redactor
	req    Request
	hidden []string // original strings that must not appear in the output
}

func (o *oracle) expected(f *fieldNode, inherit policy.Action) policy.Action {
	a := o.ownAction(f, inherit)
	// Inside an encrypted field every value is encrypted or removed.
	if inherit == policy.ActionEncrypt && a != policy.ActionRemove && a != policy.ActionEncrypt {
		return policy.ActionEncrypt
	}
	return a
}

func (o *oracle) ownAction(f *fieldNode, inherit policy.Action) policy.Action {
	cat := f.def.Category
	for _, p := range o.req.Excluded {
		if decision.Excludes(p, cat) {
			return policy.ActionRemove
		}
	}
	if o.req.Mode == ModeRemoveExcluded {
		// Encrypt rules apply on every output.
		if _, ok := o.req.Stream.EncryptionFor(f.path, cat); ok {
			return policy.ActionEncrypt
		}
		if cat == "" && o.req.Stream.Unannotated == policy.UnannotatedRemove {
			return o.req.Stream.TreatmentFor(f.path, "")
		}
		return policy.ActionKeep
	}
	if cat == "" && inherit != "" {
		for _, t := range o.req.Stream.Treatments {
			if t.Field == f.path {
				return t.Action
			}
		}
		return inherit
	}
	return o.req.Stream.TreatmentFor(f.path, cat)
}

func (o *oracle) record(n *node, in, out map[string]any, inherit policy.Action) {
	n.children()
	for _, f := range n.fields {
		iv, ov := in[f.def.Name], out[f.def.Name]
		a := o.expected(f, inherit)
		switch a {
		case policy.ActionRemove:
			if !removedLike(f.def, ov) {
				o.t.Errorf("field %s must be removed, holds %#v", f.path, ov)
			}
			o.hidden = append(o.hidden, stringsIn(iv)...)
			continue
		case policy.ActionPseudonymise, policy.ActionMask, policy.ActionEncrypt:
			if f.node.t.Kind != avrocodec.KindRecord && !isRecordUnion(f.node.t) {
				o.hidden = append(o.hidden, directStrings(iv)...)
			}
		}
		next := policy.Action("")
		if a != policy.ActionKeep {
			next = a
		}
		o.descend(f.node, iv, ov, next)
	}
}

func isRecordUnion(t *avrocodec.Type) bool {
	if t.Kind != avrocodec.KindUnion {
		return false
	}
	for _, b := range t.Branches {
		if b.Kind == avrocodec.KindRecord {
			return true
		}
	}
	return false
}

// descend pairs the input and output values of n and checks the records
// inside them.
func (o *oracle) descend(n *node, in, out any, inherit policy.Action) {
	n.children()
	switch n.t.Kind {
	case avrocodec.KindRecord:
		im, _ := in.(map[string]any)
		om, ok := out.(map[string]any)
		if ok {
			o.record(n, im, om, inherit)
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
					o.descend(n.branches[i], iv, ov, inherit)
				}
			}
		}
	case avrocodec.KindArray:
		ia, _ := in.([]any)
		oa, _ := out.([]any)
		if len(ia) == len(oa) {
			for i := range ia {
				o.descend(n.items, ia[i], oa[i], inherit)
			}
		}
	case avrocodec.KindMap:
		im, _ := in.(map[string]any)
		om, _ := out.(map[string]any)
		for k, iv := range im {
			if ov, found := om[mapKey(o.r, o.req, inherit, k)]; found {
				o.descend(n.values, iv, ov, inherit)
			}
		}
	}
}

// outStrings lists every string of v, values and map keys, however short.
func outStrings(v any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for k, e := range x {
				out = append(out, k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// stringsIn lists every string of v (values and map keys).
func stringsIn(v any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for k, e := range x {
				out = append(out, k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return distinctive(out)
}

// directStrings lists the strings of v outside nested records: the value
// itself, union branches, array items and map values and keys.
func directStrings(v any) []string {
	var out []string
	var walk func(v any, top bool)
	walk = func(v any, top bool) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			if len(x) == 1 {
				for k, e := range x {
					if isUnionKeyForTest(k) {
						if _, isRec := e.(map[string]any); !isRec {
							walk(e, top)
						}
						return
					}
				}
			}
			for k, e := range x { // a map value
				out = append(out, k)
				if _, isRec := e.(map[string]any); !isRec {
					walk(e, false)
				}
			}
		case []any:
			for _, e := range x {
				if _, isRec := e.(map[string]any); !isRec || isUnionWrapper(e) {
					walk(e, false)
				}
			}
		}
	}
	walk(v, true)
	return distinctive(out)
}

func isUnionWrapper(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k := range m {
		return isUnionKeyForTest(k)
	}
	return false
}

// primitives are the names of the primitive Avro types.
var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

func isUnionKeyForTest(k string) bool {
	return strings.Contains(k, ".") || primitives[k] || k == "array" || k == "map"
}

// distinctive keeps the strings long enough to be generated ones.
func distinctive(list []string) []string {
	return slices.DeleteFunc(list, func(s string) bool { return len(s) < 8 })
}

// removedLike reports whether v is what a removed field f may hold: null,
// its default or a zero value.
func removedLike(f *avrocodec.RecordField, v any) bool {
	if f.Type.Nullable() {
		return v == nil
	}
	if f.HasDefault {
		if d, err := defaultOf(f.Type, f.Default); err == nil && same(d, v) {
			return true
		}
	}
	return zeroLike(f.Type, v)
}

func zeroLike(t *avrocodec.Type, v any) bool {
	switch t.Kind {
	case avrocodec.KindNull:
		return v == nil
	case avrocodec.KindUnion:
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return v == nil && t.Nullable()
		}
		for k, e := range m {
			i := t.BranchIndex(k)
			return i >= 0 && zeroLike(t.Branches[i], e)
		}
	case avrocodec.KindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for _, f := range t.Fields {
			if !removedLike(f, m[f.Name]) {
				return false
			}
		}
		return true
	case avrocodec.KindEnum:
		return v == t.Symbols[0]
	case avrocodec.KindArray:
		a, ok := v.([]any)
		return ok && len(a) == 0
	case avrocodec.KindMap:
		m, ok := v.(map[string]any)
		return ok && len(m) == 0
	}
	switch x := v.(type) {
	case string:
		return x == ""
	case bool:
		return !x
	case int32:
		return x == 0
	case int64:
		return x == 0
	case float32:
		return x == 0
	case float64:
		return x == 0
	case time.Duration:
		return x == 0
	case time.Time:
		return x.Unix() == 0 && x.Nanosecond() == 0
	case []byte:
		return len(bytes.Trim(x, "\x00")) == 0
	}
	return false
}

func fuzzSchemas(t testing.TB) []*avrocodec.Schema {
	cat, kit := catalogs(t)
	return append(cat.Schemas(), kit.Schemas()...)
}

// FuzzRedactNeverLeaks generates random events of the real schemas (and of
// the test kitchen schema) with random streams (encrypt rules among them,
// with or without the subject's keys) and grants, and checks that no field
// that must be removed keeps its value, that no original string of a
// removed, pseudonymised, masked or encrypted field appears anywhere in the
// output, that every ciphertext in the output opens with the request's
// keys to a generated input string, that the output encodes, and that the
// input is left alone.
func FuzzRedactNeverLeaks(f *testing.F) {
	for i := range uint64(16) {
		f.Add(i, i*7919+1)
	}
	r := newRedactor(f)
	all := fuzzSchemas(f)
	pats := patterns()
	paths := map[*avrocodec.Schema]map[string]bool{}
	for _, s := range all {
		paths[s] = map[string]bool{}
		for _, fi := range s.Fields {
			paths[s][fi.Path] = true
		}
	}
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		g := &gen{rnd: rand.New(rand.NewPCG(seed1, seed2)), made: map[string]bool{}}
		s := all[g.rnd.IntN(len(all))]
		root, err := r.plan(s)
		if err != nil {
			t.Fatal(err)
		}
		req := g.request(s, root.t, pats)
		in := cloneNative(req.Value).(map[string]any)
		res := apply(t, r, req)
		o := &oracle{t: t, r: r, req: req}
		o.record(root, in, res.Value, "")
		js, err := json.Marshal(res.Value)
		if err != nil {
			t.Fatalf("marshal output: %v", err)
		}
		for _, h := range o.hidden {
			if !g.made[h] {
				continue // an enum symbol or a union key: not personal data
			}
			if bytes.Contains(js, []byte(h)) {
				t.Errorf("output of %s (mode %v) still holds a value that had to be removed, pseudonymised or masked", s.FullName, req.Mode)
				if testing.Verbose() {
					t.Logf("value %q in %s\nstream %+v excluded %q", h, js, req.Stream, req.Excluded)
				}
			}
		}
		for _, c := range outStrings(res.Value) {
			if !strings.HasPrefix(c, testPrefix) {
				continue
			}
			keys, _ := req.Keys.(*testKeys)
			if keys == nil {
				t.Fatalf("a ciphertext in an output made without keys")
			}
			if p, _, ok := keys.openString(c); !ok || !g.made[p] {
				t.Errorf("output of %s holds a ciphertext that does not open to an input string", s.FullName)
			}
		}
		for _, p := range res.Treated {
			if !paths[s][p] {
				t.Errorf("treated path %q is not a field of %s", p, s.FullName)
			}
		}
		encrypts := slices.ContainsFunc(req.Stream.Treatments, func(t policy.Treatment) bool { return t.Action == policy.ActionEncrypt })
		if req.Mode == ModeRemoveExcluded && len(req.Excluded) == 0 && req.Stream.Unannotated != policy.UnannotatedRemove && !encrypts && len(res.Treated) > 0 {
			t.Errorf("nothing excluded, yet treated %q", res.Treated)
		}
	})
}

func BenchmarkApplyPurchase(b *testing.B) {
	r := newRedactor(b)
	s := schemaOf(b, purchaseName, 0)
	pol, err := policy.Load("../policy/testdata/example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	analytics, _ := pol.Stream("compliant.analytics")
	value := purchase()
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{"redact", Request{Schema: s, Value: value, Stream: analytics, Excluded: []string{"user.health"}, Mode: ModeRedact}},
		{"remove_excluded", Request{Schema: s, Value: value, Excluded: []string{"user.health"}, Mode: ModeRemoveExcluded}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Apply(bc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
