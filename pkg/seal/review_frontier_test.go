package seal

import (
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestReviewFrontierRefusesOutOfOrderLeaves: a frontier tree refuses a leaf
// of any offset but the next (repeated, skipped, before the base), and a
// store refuses stored hashes written out of place; a refusal changes
// nothing, and the tree goes on giving the in-memory tree's root.
func TestReviewFrontierRefusesOutOfOrderLeaves(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	const base = 40
	mem, fr := NewTree(testTopic, 0, base), NewFrontierTree(testTopic, 0, base)
	store := fr.store.(*FrontierStore)
	for i := range 600 {
		next := int64(base + i)
		before, beforeLen, beforeCount := mustRoot(t, fr), store.Len(), store.count
		for _, bad := range []int64{next - 1, next + 1, next + 1 + rng.Int64N(1000), base - 1, 0} {
			if bad == next {
				continue
			}
			var oe *OffsetError
			if err := fr.AppendLeafHash(bad, tlog.Hash{byte(i)}); !errors.As(err, &oe) {
				t.Fatalf("leaf %d: offset %d accepted (%v)", i, bad, err)
			}
		}
		// Stored hashes out of place, or too few or too many.
		h := tlog.Hash{1}
		if err := store.WriteHashes(store.count+1, []tlog.Hash{h}); err == nil {
			t.Fatalf("leaf %d: a write past the store's end accepted", i)
		}
		if store.count > 0 {
			if err := store.WriteHashes(store.count-1, []tlog.Hash{h}); err == nil {
				t.Fatalf("leaf %d: a write over a stored hash accepted", i)
			}
		}
		if err := store.WriteHashes(store.count, make([]tlog.Hash, 70)); err == nil {
			t.Fatalf("leaf %d: 70 stored hashes for one leaf accepted", i)
		}
		if got := mustRoot(t, fr); got != before || store.Len() != beforeLen || store.count != beforeCount || fr.Size() != int64(i) {
			t.Fatalf("leaf %d: a refused append changed the tree", i)
		}
		r := randomRecord(rng, next)
		if _, err := mem.Append(r.Offset, r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
		if _, err := fr.Append(r.Offset, r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
		if got, want := mustRoot(t, fr), mustRoot(t, mem); got != want {
			t.Fatalf("root of %d leaves %x, want %x", i+1, got, want)
		}
	}
}
