package tcf

import (
	"math/rand/v2"
	"sort"
	"testing"
)

// A random TCString, encoded by the test encoder with random choices (bit
// field or range encoding, MaxVendorId above the largest id, extra zero
// padding, order of the segments after the core), parses back to the same
// value.
func TestRoundTripProperty(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		want := randomTC(rnd)
		for _, o := range []encOpts{{}, {rnd: rnd}} {
			s := encode(want, o)
			got, err := Parse(s)
			if err != nil {
				t.Fatalf("case %d: Parse(encode(x)): %v", i, err)
			}
			if d := sameTC(want, got); d != "" {
				t.Fatalf("case %d: %s", i, d)
			}
		}
	}
}

// Restriction agrees with a reference model: a scan of the entries for the
// vendor and purpose.
func TestRestrictionModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		tc := randomTC(rnd)
		got, err := Parse(encode(tc, encOpts{rnd: rnd}))
		if err != nil {
			t.Fatal(err)
		}
		ids := make([][]int, len(tc.PublisherRestrictions))
		for k, r := range tc.PublisherRestrictions {
			ids[k] = r.Vendors.IDs()
		}
		for j := 0; j < 200; j++ {
			v, p := rnd.IntN(70000), rnd.IntN(30)
			if j%2 == 0 && len(ids) > 0 && len(ids[0]) > 0 {
				v, p = ids[0][rnd.IntN(len(ids[0]))], tc.PublisherRestrictions[0].Purpose
			}
			var wantType RestrictionType
			wantOK := false
			for k, r := range tc.PublisherRestrictions {
				if i := sort.SearchInts(ids[k], v); r.Purpose == p && i < len(ids[k]) && ids[k][i] == v {
					wantType, wantOK = r.Type, true
				}
			}
			if typ, ok := got.Restriction(v, p); ok != wantOK || typ != wantType {
				t.Fatalf("Restriction(%d, %d) = %v %v, want %v %v", v, p, typ, ok, wantType, wantOK)
			}
		}
	}
}

// worstRestrictions is a core segment close to MaxLength with 4095
// publisher restrictions for one purpose, alternating between two types,
// with disjoint vendor ranges: the conflict check must stay cheap.
func worstRestrictions() string {
	var w bitWriter
	w.coreHeader(baseTC(4))
	w.vendorsBitField(Set{}, 0)
	w.vendorsBitField(Set{}, 0)
	w.put(4095, 12)
	next := 1
	for i := 0; i < 4095; i++ {
		w.put(1, 6)
		w.put(uint64(1+i%2), 2)
		var es []entry
		for k := 0; k < 4 && next < 0xFFFF; k++ {
			es = append(es, entry{false, next, next})
			next += 3
		}
		w.ranges(es)
	}
	return w.text(0)
}

func TestWorstCaseRestrictions(t *testing.T) {
	s := worstRestrictions()
	if len(s) > MaxLength {
		t.Fatalf("test string is %d bytes", len(s))
	}
	got, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.PublisherRestrictions) != 4095 {
		t.Fatalf("%d restrictions", len(got.PublisherRestrictions))
	}
}

func BenchmarkParseWorstCaseRestrictions(b *testing.B) {
	s := worstRestrictions()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSpecExample(b *testing.B) {
	s := fuzzSeeds[0]
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
