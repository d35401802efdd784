package gpp

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// randomSection builds a Section with random values for id, as Parse would
// return it (Raw filled by the caller from the encoder).
func randomSection(r *rand.Rand, id int) Section {
	switch id {
	case idTCFEUv2:
		segs := make([]string, 1+r.IntN(3))
		for i := range segs {
			b := make([]byte, 1+r.IntN(40))
			for j := range b {
				b[j] = alphabet[r.IntN(64)]
			}
			segs[i] = string(b)
		}
		t := strings.Join(segs, ".")
		return Section{ID: id, Name: "tcfeuv2", TCF: t}
	case idUSPv1:
		return Section{ID: id, Name: uspv1Name,
			Fields:  map[string]int{"sale_opt_out": r.IntN(3)},
			Notices: map[string]int{"notice": r.IntN(3), "lspa_covered": r.IntN(3)}}
	}
	d, ok := byID[id]
	if !ok {
		b := make([]byte, 1+r.IntN(20))
		for j := range b {
			b[j] = (alphabet + ".")[r.IntN(65)]
		}
		if b[0] == '.' {
			b[0] = 'A'
		}
		return Section{ID: id, Raw: string(b)}
	}
	versions := slices.Sorted(maps.Keys(d.versions))
	v := versions[r.IntN(len(versions))]
	l := d.versions[v]
	sec := Section{ID: id, Name: d.name, Version: v, Fields: map[string]int{}, Notices: map[string]int{}}
	fill := func(fs []field) {
		for _, f := range fs {
			for _, n := range f.names() {
				val := f.min + r.IntN(f.max-f.min+1)
				if f.name == "mspa_version" && val == id {
					val = 1 // the section-header form is refused
				}
				if f.kind != 0 {
					sec.Fields[n] = val
				} else {
					sec.Notices[n] = val
				}
			}
		}
	}
	fill(l.core)
	if l.gpc && r.IntN(2) == 0 {
		g := r.IntN(2) == 1
		sec.GPC = &g
		sec.Fields["gpc"] = map[bool]int{false: 0, true: 1}[g]
	}
	if l.sensitive != nil && r.IntN(2) == 0 {
		fill(l.sensitive)
	}
	return sec
}

var propertyIDs = func() []int {
	ids := []int{1, 2, 4, 5, 6, 28, 31, 40}
	for _, d := range usSections {
		ids = append(ids, d.id)
	}
	slices.Sort(ids)
	return ids
}()

func randomString(r *rand.Rand) *String {
	var ids []int
	for _, id := range propertyIDs {
		if r.IntN(3) == 0 {
			ids = append(ids, id)
		}
	}
	s := &String{Version: 1, SectionIDs: ids}
	for _, id := range ids {
		s.Sections = append(s.Sections, randomSection(r, id))
	}
	if s.SectionIDs == nil {
		s.SectionIDs = []int{}
	}
	return s
}

func sameSection(a, b Section) bool {
	gpcEq := (a.GPC == nil) == (b.GPC == nil) && (a.GPC == nil || *a.GPC == *b.GPC)
	return a.ID == b.ID && a.Name == b.Name && a.Version == b.Version && a.Raw == b.Raw && a.TCF == b.TCF &&
		gpcEq && maps.Equal(a.Fields, b.Fields) && maps.Equal(a.Notices, b.Notices)
}

// TestPropertyEncodeParse: random section values -> test encoder -> Parse
// gives the same values, with either padding convention.
func TestPropertyEncodeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		want := randomString(r)
		long := r.IntN(2) == 0
		for j := range want.Sections {
			want.Sections[j].Raw = encodeSection(want.Sections[j], long)
		}
		in := encodeString(want, long)
		got, err := Parse(in)
		if err != nil {
			t.Fatalf("case %d: Parse(%q): %v", i, in, err)
		}
		if got.Version != 1 || !slices.Equal(got.SectionIDs, want.SectionIDs) || len(got.Sections) != len(want.Sections) {
			t.Fatalf("case %d: %q: ids %v, want %v", i, in, got.SectionIDs, want.SectionIDs)
		}
		for j := range want.Sections {
			if !sameSection(got.Sections[j], want.Sections[j]) {
				t.Fatalf("case %d: %q: section %d\n got %+v\nwant %+v", i, in, j, got.Sections[j], want.Sections[j])
			}
		}
	}
}

// TestPropertyFibonacci: the header's Fibonacci range round-trips for
// random ascending id sets, including long runs and large gaps.
func TestPropertyFibonacci(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		var ids []int
		id := 0
		for n := r.IntN(30); n > 0; n-- {
			if r.IntN(2) == 0 {
				id++
			} else {
				id += 1 + r.IntN(5000)
			}
			ids = append(ids, id)
		}
		text := encodeHeader(ids, r.IntN(2) == 0)
		h, err := parseHeader(text, len(ids))
		if err != nil {
			t.Fatalf("%v: %v", ids, err)
		}
		if !slices.Equal(h.ids, ids) && !(len(ids) == 0 && len(h.ids) == 0) {
			t.Fatalf("ids %v decoded as %v", ids, h.ids)
		}
		if len(ids) > 0 {
			if _, err := parseHeader(text, len(ids)-1); err == nil {
				t.Fatalf("%v: accepted with one section fewer", ids)
			}
		}
	}
}

// TestPropertyMutations: flipping a character of a valid string either
// fails with a *ParseError or parses to a String whose values are all in
// the catalogue's ranges; it never panics.
func TestPropertyMutations(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 3000; i++ {
		s := randomString(r)
		in := []byte(encodeString(s, r.IntN(2) == 0))
		in[r.IntN(len(in))] = (alphabet + ".~=+")[r.IntN(68)]
		g, err := Parse(string(in))
		checkInvariants(t, string(in), g, err)
	}
}

// checkInvariants is what every Parse result must satisfy.
func checkInvariants(t *testing.T, in string, g *String, err error) {
	t.Helper()
	if err != nil {
		if g != nil {
			t.Fatalf("%q: result and error", in)
		}
		if _, ok := err.(*ParseError); !ok {
			t.Fatalf("%q: error %T", in, err)
		}
		return
	}
	if len(g.Sections) != len(g.SectionIDs) {
		t.Fatalf("%q: %d sections for %d ids", in, len(g.Sections), len(g.SectionIDs))
	}
	for i, s := range g.Sections {
		if s.ID != g.SectionIDs[i] || (i > 0 && g.SectionIDs[i] <= g.SectionIDs[i-1]) {
			t.Fatalf("%q: ids %v", in, g.SectionIDs)
		}
		for n, v := range s.Fields {
			k, ok := FieldKind(s.Name, n)
			if !ok {
				t.Fatalf("%q: %s.%s not in the catalogue", in, s.Name, n)
			}
			if v < 0 || v > 2 || (k == Flag && v > 1) {
				t.Fatalf("%q: %s.%s = %d", in, s.Name, n, v)
			}
		}
		if (s.GPC != nil) != hasKey(s.Fields, "gpc") || (s.GPC != nil && *s.GPC != (s.Fields["gpc"] == 1)) {
			t.Fatalf("%q: %s: GPC %v vs Fields %v", in, s.Name, s.GPC, s.Fields)
		}
	}
	// Re-encoding the decoded values gives a string that parses to the same values.
	re := encodeString(g, false)
	g2, err := Parse(re)
	if err != nil {
		t.Fatalf("%q: re-encoded %q fails: %v", in, re, err)
	}
	for i := range g.Sections {
		a, b := g.Sections[i], g2.Sections[i]
		a.Raw, b.Raw = "", ""
		if !sameSection(a, b) {
			t.Fatalf("%q: re-encoded section %d differs:\n %+v\n %+v", in, i, a, b)
		}
	}
}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }
