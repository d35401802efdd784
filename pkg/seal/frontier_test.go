package seal

import (
	"crypto/sha256"
	"errors"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestFrontierTreeMatchesMemTree: for random leaf sequences, a frontier
// tree has the in-memory tree's root at every size, keeps one hash per set
// bit of its size, and whatever it answers about older sizes (roots, leaf
// hashes, proofs) is the in-memory tree's answer or an error wrapping
// ErrNotKept, never another hash.
func TestFrontierTreeMatchesMemTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for run := range 40 {
		n := rng.IntN(300)
		if run == 0 {
			n = 1100 // past 1024: a deeper merge
		}
		base := rng.Int64N(1000)
		mem, fr := NewTree(testTopic, 1, base), NewFrontierTree(testTopic, 1, base)
		store := fr.store.(*FrontierStore)
		var answered, refused int
		for i := range n {
			if got, want := mustRoot(t, fr), mustRoot(t, mem); got != want {
				t.Fatalf("run %d: root of %d leaves %x, want %x", run, i, got, want)
			}
			if got, want := store.Len(), bits.OnesCount64(uint64(i)); got != want {
				t.Fatalf("run %d: frontier of %d leaves keeps %d hashes, want %d", run, i, got, want)
			}
			r := randomRecord(rng, base+int64(i))
			hm, err := mem.Append(r.Offset, r.Key, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			hf, err := fr.Append(r.Offset, r.Key, r.Value)
			if err != nil || hf != hm {
				t.Fatalf("run %d: append %d: %x, %v; want %x", run, i, hf, err, hm)
			}
			// Questions about older sizes: right or refused.
			size := fr.Size()
			old := rng.Int64N(size + 1)
			idx := rng.Int64N(size)
			check := func(what string, gotErr error, same bool) {
				t.Helper()
				switch {
				case gotErr == nil && !same:
					t.Fatalf("run %d: %s at size %d: a wrong answer", run, what, size)
				case gotErr == nil:
					answered++
				case !errors.Is(gotErr, ErrNotKept):
					t.Fatalf("run %d: %s at size %d: %v, want ErrNotKept", run, what, size, gotErr)
				default:
					refused++
				}
			}
			gr, err := fr.RootAt(old)
			wr, _ := mem.RootAt(old)
			check("RootAt", err, gr == wr)
			gl, err := fr.LeafHashAt(base + idx)
			wl, _ := mem.LeafHashAt(base + idx)
			check("LeafHashAt", err, gl == wl)
			gp, err := fr.ProveRecord(idx, size)
			wp, _ := mem.ProveRecord(idx, size)
			check("ProveRecord", err, equalHashes(gp, wp))
			if old > 0 {
				gt, err := fr.ProveTree(old, size)
				wt, _ := mem.ProveTree(old, size)
				check("ProveTree", err, equalHashes(gt, wt))
			}
		}
		if run == 0 && refused == 0 {
			t.Fatal("a frontier tree answered every question about older sizes: it keeps more than its frontier")
		}
		// Appends after many sizes go on giving the same roots.
		if got, want := mustRoot(t, fr), mustRoot(t, mem); got != want {
			t.Fatalf("run %d: final root %x, want %x", run, got, want)
		}
	}
}

func equalHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFrontierTreeRefusesOutOfOrder(t *testing.T) {
	fr := NewFrontierTree(testTopic, 0, 5)
	var oe *OffsetError
	if _, err := fr.Append(6, nil, []byte("x")); !errors.As(err, &oe) || fr.Size() != 0 {
		t.Fatalf("append of offset 6 to an empty tree of base 5: %v, size %d", err, fr.Size())
	}
	if _, err := fr.Append(5, nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A store written out of order refuses.
	var f FrontierStore
	if err := f.WriteHashes(1, []tlog.Hash{{}}); err == nil {
		t.Fatal("write at 1 of an empty store accepted")
	}
	if err := f.WriteHashes(0, []tlog.Hash{{}, {}}); err == nil {
		t.Fatal("two hashes for leaf 0 accepted")
	}
	if _, err := f.ReadHashes([]int64{0}); err == nil || errors.Is(err, ErrNotKept) {
		t.Fatalf("read of hash 0 of an empty store: %v, want out of the store", err)
	}
}

// TestFrontierTreeMemoryIsBounded: after 1,000,000 appends the frontier
// keeps at most log2(n)+1 hashes and the tree's heap stays small (an
// in-memory tree of that size holds 64 MB of stored hashes).
func TestFrontierTreeMemoryIsBounded(t *testing.T) {
	n := int64(1_000_000)
	if testing.Short() {
		n = 100_000
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fr := NewFrontierTree(testTopic, 0, 0)
	store := fr.store.(*FrontierStore)
	var h tlog.Hash
	maxLen := 0
	for o := range n {
		h = sha256.Sum256(h[:])
		if err := fr.AppendLeafHash(o, h); err != nil {
			t.Fatal(err)
		}
		maxLen = max(maxLen, store.Len())
	}
	if limit := 2*bits.Len64(uint64(n)) + 2; maxLen > limit {
		t.Fatalf("the frontier kept up to %d hashes over %d appends, want <= %d", maxLen, n, limit)
	}
	if maxLen > bits.Len64(uint64(n)) {
		t.Fatalf("the frontier kept up to %d hashes, more than one per bit of %d", maxLen, n)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Fatalf("heap grew by %d bytes over %d appends to a frontier tree", grown, n)
	}
	runtime.KeepAlive(fr)
}

// BenchmarkFrontierAppend1M is BenchmarkAppend1M over a frontier tree; it
// reports the hashes the store keeps at the end.
func BenchmarkFrontierAppend1M(b *testing.B) {
	const n = 1_000_000
	key := []byte("subject-0001")
	value := make([]byte, 200)
	var kept int
	for b.Loop() {
		tree := NewFrontierTree(testTopic, 0, 0)
		for o := int64(0); o < n; o++ {
			value[0] = byte(o)
			if _, err := tree.Append(o, key, value); err != nil {
				b.Fatal(err)
			}
		}
		kept = tree.store.(*FrontierStore).Len()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/leaf")
	b.ReportMetric(float64(kept), "hashes-kept")
}
