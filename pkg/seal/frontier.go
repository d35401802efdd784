package seal

import (
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrNotKept is returned (wrapped) by a FrontierStore asked for a stored
// hash it does not keep: a root of an older size, a leaf hash, a proof.
var ErrNotKept = errors.New("not kept by a frontier store (it keeps only what appending and the current root need)")

// A FrontierStore is a HashStore that keeps only the frontier of its tree:
// the roots of the perfect subtrees that decompose the current size (one
// per set bit of the size, so at most 64 hashes, whatever the size). That
// is every stored hash tlog reads again to append a leaf and to compute the
// current root, so a Tree over it appends and answers Root and Checkpoint
// in bounded memory, as a Tree over a MemStore would.
//
// What needs an older stored hash cannot be answered from it: RootAt a
// size below the current one, LeafHashAt, ProveRecord and ProveTree return
// an error wrapping ErrNotKept (or are answered, correctly, in the few
// cases where every hash they need happens to be in the frontier). It
// never returns a wrong hash: it returns a hash only for the stored hash
// index it was written at.
//
// The zero value is the store of an empty tree. It accepts only a Tree's
// appends: one leaf's stored hashes at a time, in order.
type FrontierStore struct {
	n     int64      // leaves appended
	count int64      // tlog.StoredHashCount(n)
	nodes []frontier // largest subtree first
}

type frontier struct {
	index int64 // stored hash index
	hash  tlog.Hash
}

// Len is the number of hashes the store keeps: the number of set bits of
// the tree's size.
func (f *FrontierStore) Len() int { return len(f.nodes) }

// ReadHashes implements tlog.HashReader for the hashes of the frontier.
func (f *FrontierStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		found := false
		for _, nd := range f.nodes {
			if nd.index == x {
				out[i], found = nd.hash, true
				break
			}
		}
		if !found {
			if x < 0 || x >= f.count {
				return nil, fmt.Errorf("seal: stored hash %d not in store of %d", x, f.count)
			}
			return nil, fmt.Errorf("seal: stored hash %d of a tree of %d leaves: %w", x, f.n, ErrNotKept)
		}
	}
	return out, nil
}

// WriteHashes implements HashStore: hashes are the stored hashes of the
// next leaf (tlog.StoredHashesForRecordHash), written at start, the number
// of hashes stored so far.
func (f *FrontierStore) WriteHashes(start int64, hashes []tlog.Hash) error {
	if start != f.count {
		return fmt.Errorf("seal: write of stored hashes at %d, store has %d", start, f.count)
	}
	// Appending leaf n stores its hash and one hash per trailing 1 bit of
	// n: the subtrees it completes. The last is the root of the new
	// rightmost perfect subtree; the m subtrees it merged leave the
	// frontier.
	m := bits.TrailingZeros64(uint64(f.n + 1))
	if len(hashes) != m+1 {
		return fmt.Errorf("seal: leaf %d has %d stored hashes, not %d", f.n, len(hashes), m+1)
	}
	if len(f.nodes) < m {
		return fmt.Errorf("seal: frontier of %d leaves has %d hashes, appending merges %d", f.n, len(f.nodes), m)
	}
	f.nodes = append(f.nodes[:len(f.nodes)-m], frontier{index: tlog.StoredHashIndex(m, f.n>>uint(m)), hash: hashes[m]})
	f.n++
	f.count += int64(len(hashes))
	return nil
}

// NewFrontierTree returns an empty tree over a FrontierStore for the
// partition, whose first leaf will be the record at offset base: it
// appends and gives the current root and checkpoint in memory bounded
// whatever its size, and answers nothing about older sizes (see
// FrontierStore).
func NewFrontierTree(topic string, partition int32, base int64) *Tree {
	t, _ := OpenTree(topic, partition, base, 0, &FrontierStore{})
	return t
}
