package seal

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// expectation is what Verify must report of a mutation: error findings of
// exactly these kinds, and for each kind one finding that names the
// offset (or the checkpoints) that changed.
type expectation struct {
	kinds []Kind
	// check is called with the error findings; it returns what is wrong.
	check func(errs []Finding) string
}

type mutation struct {
	name string
	// apply mutates copies of the fixture's records and notes; ok false
	// when the mutation does not apply to this fixture.
	apply func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool)
}

// names: some finding of kind k covers offset o exactly (exact) or within
// its range.
func names(errs []Finding, k Kind, o int64, exact bool) bool {
	for _, f := range errs {
		if f.Kind == k && f.From <= o && o <= f.To && (!exact || f.From == o) {
			return true
		}
	}
	return false
}

func kindsOf(fs []Finding) []Kind {
	var ks []Kind
	for _, f := range fs {
		if !slices.Contains(ks, f.Kind) {
			ks = append(ks, f.Kind)
		}
	}
	slices.Sort(ks)
	return ks
}

// sealedIndex picks a record index below the fixture's sealed size.
func sealedIndex(rng *rand.Rand, f *fixture) (int, bool) {
	if f.sealed() == 0 {
		return 0, false
	}
	return rng.IntN(int(f.sealed())), true
}

// alteredExpectation: without the ledger, an altered finding whose range
// holds offset o; with it, one that starts at o and every altered finding
// lies in [o, last].
func alteredExpectation(o, last int64, withLedger bool) expectation {
	return expectation{kinds: []Kind{KindAltered}, check: func(errs []Finding) string {
		if !names(errs, KindAltered, o, withLedger) {
			return fmt.Sprintf("no altered finding names offset %d", o)
		}
		for _, f := range errs {
			if withLedger && (f.From < o || f.To > last) {
				return fmt.Sprintf("altered %d..%d outside %d..%d", f.From, f.To, o, last)
			}
		}
		return ""
	}}
}

var mutations = []mutation{
	{"alter a value byte", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		i, ok := sealedIndex(rng, f)
		if !ok {
			return nil, nil, expectation{}, false
		}
		if len(recs[i].Value) == 0 {
			recs[i].Value = append(recs[i].Value, 'x')
		} else {
			recs[i].Value[rng.IntN(len(recs[i].Value))] ^= 1 << rng.IntN(8)
		}
		return recs, notes, alteredExpectation(recs[i].Offset, recs[i].Offset, withLedger), true
	}},
	{"alter a key", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		i, ok := sealedIndex(rng, f)
		if !ok {
			return nil, nil, expectation{}, false
		}
		switch k := recs[i].Key; {
		case k == nil:
			recs[i].Key = []byte{}
		case len(k) == 0:
			recs[i].Key = nil
		default:
			k[rng.IntN(len(k))]++
		}
		return recs, notes, alteredExpectation(recs[i].Offset, recs[i].Offset, withLedger), true
	}},
	{"drop a record", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		i := rng.IntN(len(recs))
		o := recs[i].Offset
		if i == len(recs)-1 && o >= f.base+f.sealed() {
			return nil, nil, expectation{}, false // an unsealed last record leaves no trace
		}
		return slices.Delete(recs, i, i+1), notes, expectation{kinds: []Kind{KindMissing}, check: func(errs []Finding) string {
			if !names(errs, KindMissing, o, true) {
				return fmt.Sprintf("no missing finding from offset %d", o)
			}
			return ""
		}}, true
	}},
	{"swap two records", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		if len(recs) < 2 {
			return nil, nil, expectation{}, false
		}
		i, j := rng.IntN(len(recs)), rng.IntN(len(recs))
		if i == j {
			return nil, nil, expectation{}, false
		}
		i, j = min(i, j), max(i, j)
		a, b := recs[i].Offset, recs[j].Offset
		recs[i], recs[j] = recs[j], recs[i]
		return recs, notes, expectation{kinds: []Kind{KindReordered}, check: func(errs []Finding) string {
			for _, f := range errs {
				if f.From != f.To || f.From != a && f.From != b {
					return fmt.Sprintf("reordered %d..%d, swapped were %d and %d", f.From, f.To, a, b)
				}
			}
			if !(names(errs, KindReordered, a, true) && names(errs, KindReordered, b, true)) {
				return fmt.Sprintf("not both of %d and %d named", a, b)
			}
			return ""
		}}, true
	}},
	{"truncate", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		k, ok := sealedIndex(rng, f)
		if !ok {
			return nil, nil, expectation{}, false
		}
		end := f.base + f.sealed() - 1
		from := f.base + int64(k)
		return recs[:k], notes, expectation{kinds: []Kind{KindMissing}, check: func(errs []Finding) string {
			if len(errs) != 1 || errs[0].From != from || errs[0].To != end {
				return fmt.Sprintf("want missing %d..%d", from, end)
			}
			return ""
		}}, true
	}},
	{"insert a duplicate after the original", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		i := rng.IntN(len(recs))
		fake := randomRecord(rng, recs[i].Offset)
		recs = slices.Insert(recs, i+1, fake)
		o := fake.Offset
		return recs, notes, expectation{kinds: []Kind{KindDuplicate}, check: func(errs []Finding) string {
			if !names(errs, KindDuplicate, o, true) {
				return fmt.Sprintf("no duplicate at %d", o)
			}
			return ""
		}}, true
	}},
	{"insert a duplicate before the original", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		i, ok := sealedIndex(rng, f)
		if !ok {
			return nil, nil, expectation{}, false
		}
		fake := randomRecord(rng, recs[i].Offset)
		fake.Value = append(fake.Value, 'f') // never the original
		recs = slices.Insert(recs, i, fake)
		o := fake.Offset
		kinds := []Kind{KindAltered, KindDuplicate} // the first read is taken for the tree
		if withLedger {
			kinds = []Kind{KindDuplicate} // the ledger's is taken
		}
		return recs, notes, expectation{kinds: kinds, check: func(errs []Finding) string {
			if !names(errs, KindDuplicate, o, true) {
				return fmt.Sprintf("no duplicate at %d", o)
			}
			if !withLedger && !names(errs, KindAltered, o, false) {
				return fmt.Sprintf("no altered range holds %d", o)
			}
			return ""
		}}, true
	}},
	{"insert a record and renumber the rest", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		i, ok := sealedIndex(rng, f)
		if !ok {
			return nil, nil, expectation{}, false
		}
		o := recs[i].Offset
		recs = slices.Insert(recs, i, randomRecord(rng, o))
		for k := i + 1; k < len(recs); k++ {
			recs[k].Offset++
		}
		return recs, notes, alteredExpectation(o, f.base+f.sealed()-1, withLedger), true
	}},
	{"replace a checkpoint by one signed with another key", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		if len(notes) == 0 {
			return nil, nil, expectation{}, false
		}
		k := rng.IntN(len(notes))
		other, _, _ := testKeys(t, KeyName, 99)
		c, err := Open(notes[k], f.verifiers)
		if err != nil {
			t.Fatal(err)
		}
		if notes[k], err = Sign(other, c); err != nil {
			t.Fatal(err)
		}
		return recs, notes, checkpointExpectation(k), true
	}},
	{"corrupt a checkpoint's signature", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		if len(notes) == 0 {
			return nil, nil, expectation{}, false
		}
		k := rng.IntN(len(notes))
		n := slices.Clone(notes[k])
		n[len(n)-4] ^= 'A' ^ 'B'
		notes[k] = n
		return recs, notes, checkpointExpectation(k), true
	}},
	{"rewrite history and sign a new checkpoint over it", func(t *testing.T, rng *rand.Rand, f *fixture, recs []Record, notes [][]byte, withLedger bool) ([]Record, [][]byte, expectation, bool) {
		i, ok := sealedIndex(rng, f)
		if !ok {
			return nil, nil, expectation{}, false
		}
		recs[i].Value = append(recs[i].Value, "rewritten"...)
		tree := NewTree(testTopic, f.partition, f.base)
		for _, r := range recs {
			tree.Append(r.Offset, r.Key, r.Value)
		}
		notes = append(notes, f.sign(t, tree, int64(len(recs))))
		last, added := len(notes)-2, len(notes)-1
		o := recs[i].Offset
		kinds := []Kind{KindAltered, KindInconsistent}
		return recs, notes, expectation{kinds: kinds, check: func(errs []Finding) string {
			if !names(errs, KindAltered, o, withLedger) {
				return fmt.Sprintf("no altered finding names %d", o)
			}
			for _, f := range errs {
				if f.Kind == KindInconsistent && f.Checkpoint == last && f.Other == added {
					return ""
				}
			}
			return fmt.Sprintf("checkpoints #%d and #%d not named inconsistent", last, added)
		}}, true
	}},
}

func checkpointExpectation(k int) expectation {
	return expectation{kinds: []Kind{KindBadCheckpoint}, check: func(errs []Finding) string {
		if len(errs) != 1 || errs[0].Checkpoint != k || errs[0].From != -1 {
			return fmt.Sprintf("want one bad checkpoint #%d", k)
		}
		return ""
	}}
}

// TestVerifyNamesEachChange is the property test: random partitions and
// checkpoints; the unmodified copy verifies with no error (and a warning
// exactly for the unsealed tail); each mutation of a copy is named with
// its kind and offset, with and without the ledger's leaf hashes.
func TestVerifyNamesEachChange(t *testing.T) {
	signer, verifiers, _ := testKeys(t, KeyName, 1)
	rng := rand.New(rand.NewPCG(7, 8))
	iterations := 150
	if testing.Short() {
		iterations = 30
	}
	applied := map[string]int{}
	for it := range iterations {
		n := 1 + rng.IntN(120)
		f := newFixture(t, rng, n, 1+rng.IntN(6), signer, verifiers)
		for _, withLedger := range []bool{false, true} {
			var ledger func(int64) (tlog.Hash, bool)
			if withLedger {
				ledger = f.ledger()
			}
			r := f.verify(t, f.recs, f.notes, ledger)
			if !r.OK() {
				t.Fatalf("iteration %d: the unmodified copy:\n%s", it, r)
			}
			for _, fd := range r.Findings {
				if fd.Kind != KindUnsealed || fd.From != f.base+f.sealed() || fd.To != f.base+int64(n)-1 {
					t.Fatalf("iteration %d: the unmodified copy: unexpected %s", it, fd)
				}
			}
			if unsealed := int64(n) > f.sealed(); unsealed != (len(r.Findings) == 1) {
				t.Fatalf("iteration %d: unsealed tail not reported:\n%s", it, r)
			}
			for _, m := range mutations {
				recs, notes, want, ok := m.apply(t, rng, f, copyRecords(f.recs), slices.Clone(f.notes), withLedger)
				if !ok {
					continue
				}
				applied[m.name]++
				r := f.verify(t, recs, notes, ledger)
				errs := r.Errors()
				if got := kindsOf(errs); !slices.Equal(got, sortedKinds(want.kinds)) {
					t.Fatalf("iteration %d, %s (ledger %v): error kinds %v, want %v\n%s", it, m.name, withLedger, got, want.kinds, r)
				}
				if msg := want.check(errs); msg != "" {
					t.Fatalf("iteration %d, %s (ledger %v): %s\n%s", it, m.name, withLedger, msg, r)
				}
			}
		}
	}
	for _, m := range mutations {
		if applied[m.name] < iterations/2 {
			t.Errorf("%s applied only %d times", m.name, applied[m.name])
		}
	}
}

func sortedKinds(ks []Kind) []Kind {
	ks = slices.Clone(ks)
	slices.Sort(ks)
	return ks
}

// TestVerifyTable: hand-made cases with the exact findings.
func TestVerifyTable(t *testing.T) {
	signer, verifiers, _ := testKeys(t, KeyName, 1)
	f := &fixture{partition: 0, base: 100, signer: signer, verifiers: verifiers}
	f.tree = NewTree(testTopic, 0, 100)
	for i := range 20 {
		r := Record{Offset: 100 + int64(i), Key: []byte(fmt.Sprintf("subject-%02d", i)), Value: []byte(fmt.Sprintf("decision %d", i))}
		f.recs = append(f.recs, r)
		f.tree.Append(r.Offset, r.Key, r.Value)
	}
	f.sizes = []int64{5, 10, 15}
	for _, s := range f.sizes {
		f.notes = append(f.notes, f.sign(t, f.tree, s))
	}
	type want struct {
		kind     Kind
		sev      Severity
		from, to int64
		cp, oth  int
	}
	for _, tc := range []struct {
		name   string
		mutate func(recs []Record, notes [][]byte) ([]Record, [][]byte)
		ledger bool
		want   []want
	}{
		{"unmodified", nil, false, []want{{KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"value altered at 107, no ledger: between checkpoints #0 and #1", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			r[7].Value[0] ^= 1
			return r, n
		}, false, []want{{KindAltered, Error, 105, 109, 1, -1}, {KindUnchecked, Warning, -1, -1, 0, 1}, {KindUnchecked, Warning, -1, -1, 1, 2}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"value altered at 107 and 112, with ledger: both named", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			r[7].Value[0] ^= 1
			r[12].Key = nil
			return r, n
		}, true, []want{{KindAltered, Error, 107, 107, -1, -1}, {KindAltered, Error, 112, 112, -1, -1}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"record 103 dropped", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			return slices.Delete(r, 3, 4), n
		}, false, []want{{KindMissing, Error, 103, 103, -1, -1}, {KindUnchecked, Warning, -1, -1, 0, 1}, {KindUnchecked, Warning, -1, -1, 1, 2}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"records 102 and 108 swapped", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			r[2], r[8] = r[8], r[2]
			return r, n
		}, false, []want{{KindReordered, Error, 102, 102, -1, -1}, {KindReordered, Error, 108, 108, -1, -1}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"checkpoints published out of order", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			n[1], n[2] = n[2], n[1]
			return r, n
		}, false, []want{{KindOutOfOrderCheckpoint, Warning, -1, -1, 1, 2}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"a fork: checkpoint #2 of another tree of size 10; the records are #1's", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			fork := NewTree(testTopic, 0, 100)
			for _, rec := range r {
				fork.Append(rec.Offset, rec.Key, append(slices.Clone(rec.Value), '!'))
			}
			n = slices.Insert(n, 2, f.sign(t, fork, 10))
			return r, n
		}, false, []want{{KindInconsistent, Error, -1, -1, 1, 2}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"a checkpoint of a far larger tree: truncation, no huge allocation", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			msg, _ := Sign(signer, Checkpoint{Topic: testTopic, Partition: 0, Base: 100, Size: 1 << 50})
			return r, append(n, msg)
		}, false, []want{{KindMissing, Error, 120, 100 + 1<<50 - 1, -1, -1}, {KindUnchecked, Warning, -1, -1, 2, 3}}},
		{"no checkpoints", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			return r, nil
		}, false, []want{{KindUnsealed, Warning, 100, 119, -1, -1}}},
		{"records before the base", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			return append([]Record{{Offset: 98}, {Offset: 99}}, r...), n
		}, false, []want{{KindUnsealed, Warning, 98, 99, -1, -1}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
		{"a checkpoint of another partition", func(r []Record, n [][]byte) ([]Record, [][]byte) {
			msg, _ := Sign(signer, Checkpoint{Topic: testTopic, Partition: 1, Size: 3})
			return r, append(n, msg)
		}, false, []want{{KindBadCheckpoint, Error, -1, -1, 3, -1}, {KindUnsealed, Warning, 115, 119, -1, -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, notes := copyRecords(f.recs), slices.Clone(f.notes)
			if tc.mutate != nil {
				recs, notes = tc.mutate(recs, notes)
			}
			var ledger func(int64) (tlog.Hash, bool)
			if tc.ledger {
				ledger = f.ledger()
			}
			r := f.verify(t, recs, notes, ledger)
			var got []want
			for _, fd := range r.Findings {
				got = append(got, want{fd.Kind, fd.Severity, fd.From, fd.To, fd.Checkpoint, fd.Other})
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("findings\n%+v\nwant\n%+v\n%s", got, tc.want, r)
			}
			// No record contents in the report, for people or machines.
			js, _ := json.Marshal(r)
			for _, s := range []string{r.String(), string(js)} {
				if strings.Contains(s, "subject-") || strings.Contains(s, "decision ") {
					t.Fatalf("the report shows record contents:\n%s", s)
				}
			}
		})
	}
}

func TestVerifyReadError(t *testing.T) {
	_, verifiers, _ := testKeys(t, KeyName, 1)
	records := func(yield func(Record, error) bool) {
		if yield(Record{Offset: 0}, nil) {
			yield(Record{}, fmt.Errorf("broker gone"))
		}
	}
	if _, err := Verify(Input{Topic: testTopic, Records: records, Verifiers: verifiers}); err == nil || !strings.Contains(err.Error(), "broker gone") {
		t.Fatalf("Verify with a failing reader = %v", err)
	}
	if _, err := Verify(Input{Topic: "bad topic", Records: RecordSlice(nil)}); err == nil {
		t.Fatal("Verify of a bad topic name succeeded")
	}
}

// TestVerifyLedgerAltered: a leaf hash altered in the ledger, the records
// intact: the ledger is named, not the record.
func TestVerifyLedgerAltered(t *testing.T) {
	signer, verifiers, _ := testKeys(t, KeyName, 1)
	rng := rand.New(rand.NewPCG(21, 22))
	for range 50 {
		f := newFixture(t, rng, 2+rng.IntN(80), 1+rng.IntN(5), signer, verifiers)
		o := f.base + int64(rng.IntN(int(f.sealed())))
		inner := f.ledger()
		ledger := func(x int64) (tlog.Hash, bool) {
			h, ok := inner(x)
			if x == o {
				h[0] ^= 1
			}
			return h, ok
		}
		r := f.verify(t, f.recs, f.notes, ledger)
		errs := r.Errors()
		if len(errs) != 1 || errs[0].Kind != KindLedgerMismatch || errs[0].From != o || errs[0].To != o {
			t.Fatalf("ledger altered at %d:\n%s", o, r)
		}
	}
}
