package tcf

import (
	"math/rand/v2"
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
		for j := 0; j < 200; j++ {
			v, p := rnd.IntN(70000), rnd.IntN(30)
			var wantType RestrictionType
			wantOK := false
			for _, r := range tc.PublisherRestrictions {
				for _, id := range r.Vendors.IDs() {
					if id == v && r.Purpose == p {
						wantType, wantOK = r.Type, true
					}
				}
			}
			if typ, ok := got.Restriction(v, p); ok != wantOK || typ != wantType {
				t.Fatalf("Restriction(%d, %d) = %v %v, want %v %v", v, p, typ, ok, wantType, wantOK)
			}
		}
	}
}
