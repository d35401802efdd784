package seal

import (
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// rfc6962Root is MTH of RFC 6962 section 2.1, written from the RFC.
func rfc6962Root(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := rfc6962Root(leaves[:k]), rfc6962Root(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func TestTreeRootIsRFC6962(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tree := NewTree(testTopic, 2, 100)
	var leaves [][]byte
	for i := range 70 {
		if got, want := mustRoot(t, tree), rfc6962Root(leaves); got != want {
			t.Fatalf("root of %d leaves = %x, want %x", i, got, want)
		}
		r := randomRecord(rng, 100+int64(i))
		leaves = append(leaves, LeafData(testTopic, 2, r.Offset, r.Key, r.Value))
		h, err := tree.Append(r.Offset, r.Key, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if h != tlog.RecordHash(leaves[i]) {
			t.Fatal("Append returns another hash than the leaf's")
		}
		if got, err := tree.LeafHashAt(r.Offset); err != nil || got != h {
			t.Fatalf("LeafHashAt(%d) = %x, %v", r.Offset, got, err)
		}
	}
	for n := int64(0); n <= tree.Size(); n++ {
		got, err := tree.RootAt(n)
		if err != nil || got != rfc6962Root(leaves[:n]) {
			t.Fatalf("RootAt(%d) = %x, %v", n, got, err)
		}
	}
}

func mustRoot(t *testing.T, tree *Tree) tlog.Hash {
	t.Helper()
	h, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestTreeAppendRefusesOtherOffsets(t *testing.T) {
	tree := NewTree(testTopic, 0, 10)
	for o := int64(10); o < 13; o++ {
		if _, err := tree.Append(o, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	root := mustRoot(t, tree)
	for _, tc := range []struct {
		name   string
		offset int64
	}{{"again", 12}, {"before base", 3}, {"skip one", 14}, {"far", 1 << 40}} {
		_, err := tree.Append(tc.offset, nil, nil)
		var oe *OffsetError
		if !errors.As(err, &oe) || oe.Want != 13 || oe.Got != tc.offset {
			t.Errorf("%s: Append(%d) = %v, want an OffsetError wanting 13", tc.name, tc.offset, err)
		}
		if tree.Size() != 3 || mustRoot(t, tree) != root {
			t.Fatalf("%s: a refused Append changed the tree", tc.name)
		}
	}
}

// failingStore fails writes after a number of them.
type failingStore struct {
	MemStore
	writes int
}

func (s *failingStore) WriteHashes(start int64, h []tlog.Hash) error {
	if s.writes == 0 {
		return errors.New("disk full")
	}
	s.writes--
	return s.MemStore.WriteHashes(start, h)
}

func TestTreeStoreErrorLeavesTreeUnchanged(t *testing.T) {
	store := &failingStore{writes: 2}
	tree, err := OpenTree(testTopic, 0, 0, 0, store)
	if err != nil {
		t.Fatal(err)
	}
	for o := int64(0); o < 2; o++ {
		if _, err := tree.Append(o, nil, []byte{byte(o)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tree.Append(2, nil, []byte{2}); err == nil || tree.Size() != 2 || tree.Next() != 2 {
		t.Fatalf("Append with a failing store: err %v, size %d", err, tree.Size())
	}
	store.writes = 1
	if _, err := tree.Append(2, nil, []byte{2}); err != nil {
		t.Fatal(err)
	}
	want := NewTree(testTopic, 0, 0)
	for o := int64(0); o < 3; o++ {
		want.Append(o, nil, []byte{byte(o)})
	}
	if mustRoot(t, tree) != mustRoot(t, want) {
		t.Fatal("the tree after a failed append and a retry differs")
	}
}

func TestOpenTreeResumes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	recs := make([]Record, 50)
	whole := NewTree(testTopic, 1, 7)
	for i := range recs {
		recs[i] = randomRecord(rng, 7+int64(i))
		whole.Append(recs[i].Offset, recs[i].Key, recs[i].Value)
	}
	store := &MemStore{}
	first, _ := OpenTree(testTopic, 1, 7, 0, store)
	for _, r := range recs[:23] {
		first.Append(r.Offset, r.Key, r.Value)
	}
	resumed, err := OpenTree(testTopic, 1, 7, 23, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[23:] {
		if _, err := resumed.Append(r.Offset, r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	if mustRoot(t, resumed) != mustRoot(t, whole) {
		t.Fatal("a resumed tree differs from one built at once")
	}
	if _, err := OpenTree(testTopic, 1, 7, 51, store); err == nil {
		t.Fatal("OpenTree of more leaves than the store holds succeeded")
	}
	for _, bad := range []struct {
		topic string
		part  int32
		base  int64
	}{{"", 0, 0}, {"a b", 0, 0}, {"a/b", 0, 0}, {"t", -1, 0}, {"t", 0, -1}} {
		if _, err := OpenTree(bad.topic, bad.part, bad.base, 0, &MemStore{}); err == nil {
			t.Errorf("OpenTree(%q, %d, %d) succeeded", bad.topic, bad.part, bad.base)
		}
	}
}

func TestTreeProofs(t *testing.T) {
	tree := NewTree(testTopic, 0, 0)
	for o := int64(0); o < 40; o++ {
		tree.Append(o, []byte("k"), []byte{byte(o)})
	}
	for n := int64(1); n <= 40; n++ {
		root, _ := tree.RootAt(n)
		for i := range n {
			p, err := tree.ProveRecord(i, n)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := tree.LeafHashAt(i)
			if err := tlog.CheckRecord(p, n, root, i, leaf); err != nil {
				t.Fatalf("leaf %d in %d: %v", i, n, err)
			}
		}
		for old := int64(1); old <= n; old++ {
			p, err := tree.ProveTree(old, n)
			if err != nil {
				t.Fatal(err)
			}
			oldRoot, _ := tree.RootAt(old)
			if err := tlog.CheckTree(p, n, root, old, oldRoot); err != nil {
				t.Fatalf("tree %d in %d: %v", old, n, err)
			}
		}
	}
	if _, err := tree.ProveRecord(5, 41); err == nil {
		t.Error("ProveRecord beyond the tree succeeded")
	}
	if _, err := tree.ProveTree(5, 41); err == nil {
		t.Error("ProveTree beyond the tree succeeded")
	}
}
