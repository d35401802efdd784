package seal

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testTopic = "consent.audit"

// testKeys makes a deterministic key pair of the given name.
func testKeys(t testing.TB, name string, seed uint64) (note.Signer, note.Verifiers, string) {
	t.Helper()
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	skey, vkey, err := note.GenerateKey(rand.NewChaCha8(s), name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ParseSigner([]byte(skey))
	if err != nil {
		t.Fatal(err)
	}
	verifiers, err := ParseVerifiers([]byte(vkey))
	if err != nil {
		t.Fatal(err)
	}
	return signer, verifiers, vkey
}

// fixture is a partition's records, its tree and checkpoints signed at
// increasing sizes.
type fixture struct {
	partition int32
	base      int64
	recs      []Record
	tree      *Tree
	sizes     []int64
	notes     [][]byte
	signer    note.Signer
	verifiers note.Verifiers
}

func randomRecord(rng *rand.Rand, offset int64) Record {
	r := Record{Offset: offset}
	switch rng.IntN(6) {
	case 0: // null key
	case 1:
		r.Key = []byte{}
	default:
		r.Key = []byte("subject-" + string(rune('A'+rng.IntN(26))) + string(rune('a'+rng.IntN(26))))
	}
	switch rng.IntN(8) {
	case 0: // null value
	case 1:
		r.Value = []byte{}
	default:
		r.Value = make([]byte, 1+rng.IntN(40))
		for i := range r.Value {
			r.Value[i] = byte(rng.Uint32())
		}
	}
	return r
}

// newFixture makes n records from a random base and checkpoints at up to
// ncp random increasing sizes in 1..n.
func newFixture(t testing.TB, rng *rand.Rand, n, ncp int, signer note.Signer, verifiers note.Verifiers) *fixture {
	t.Helper()
	f := &fixture{partition: int32(rng.IntN(4)), base: int64(rng.IntN(1000)), signer: signer, verifiers: verifiers}
	f.tree = NewTree(testTopic, f.partition, f.base)
	for i := range n {
		r := randomRecord(rng, f.base+int64(i))
		f.recs = append(f.recs, r)
		if _, err := f.tree.Append(r.Offset, r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	for range ncp {
		if n > 0 {
			f.sizes = append(f.sizes, 1+int64(rng.IntN(n)))
		}
	}
	slices.Sort(f.sizes)
	f.sizes = slices.Compact(f.sizes)
	for _, s := range f.sizes {
		f.notes = append(f.notes, f.sign(t, f.tree, s))
	}
	return f
}

func (f *fixture) sign(t testing.TB, tree *Tree, size int64) []byte {
	t.Helper()
	root, err := tree.RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Sign(f.signer, Checkpoint{Topic: testTopic, Partition: f.partition, Base: f.base, Size: size, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func (f *fixture) sealed() int64 {
	if len(f.sizes) == 0 {
		return 0
	}
	return f.sizes[len(f.sizes)-1]
}

// ledger is the leaf hashes of the unmodified records, as a ledger stored
// them at ingest.
func (f *fixture) ledger() func(int64) (tlog.Hash, bool) {
	m := make(map[int64]tlog.Hash, len(f.recs))
	for _, r := range f.recs {
		m[r.Offset] = LeafHash(testTopic, f.partition, r.Offset, r.Key, r.Value)
	}
	return func(o int64) (tlog.Hash, bool) { h, ok := m[o]; return h, ok }
}

func (f *fixture) verify(t testing.TB, recs []Record, notes [][]byte, ledger func(int64) (tlog.Hash, bool)) *Report {
	t.Helper()
	r, err := Verify(Input{Topic: testTopic, Partition: f.partition, Records: RecordSlice(recs), Checkpoints: notes, Verifiers: f.verifiers, Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func copyRecords(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		out[i] = Record{Offset: r.Offset, Key: cloneBytes(r.Key), Value: cloneBytes(r.Value)}
	}
	return out
}

// cloneBytes keeps nil nil and empty empty.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func equalRecord(a, b Record) bool {
	return a.Offset == b.Offset && (a.Key == nil) == (b.Key == nil) && bytes.Equal(a.Key, b.Key) &&
		(a.Value == nil) == (b.Value == nil) && bytes.Equal(a.Value, b.Value)
}
