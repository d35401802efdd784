package seal

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// A HashStore holds a tree's stored hashes (see tlog.StoredHashes): what a
// ledger persists so that a sealer restarts without rereading the topic.
// ReadHashes is tlog.HashReader's. WriteHashes stores hashes at the stored
// hash indexes start, start+1, ...; a Tree calls it with start equal to the
// number of hashes already stored, once per appended leaf, and does not
// count the leaf as appended unless it returns nil.
type HashStore interface {
	ReadHashes(indexes []int64) ([]tlog.Hash, error)
	WriteHashes(start int64, hashes []tlog.Hash) error
}

// MemStore is a HashStore in memory. The zero value is empty and ready.
type MemStore struct {
	hashes []tlog.Hash
}

// ReadHashes implements tlog.HashReader.
func (m *MemStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("seal: stored hash %d not in store of %d", x, len(m.hashes))
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// WriteHashes implements HashStore.
func (m *MemStore) WriteHashes(start int64, hashes []tlog.Hash) error {
	if start != int64(len(m.hashes)) {
		return fmt.Errorf("seal: write of stored hashes at %d, store has %d", start, len(m.hashes))
	}
	m.hashes = append(m.hashes, hashes...)
	return nil
}

// OffsetError is returned by Tree.Append for a record whose offset is not
// the next one of the tree: leaves are appended in offset order, without
// gaps, from the tree's base offset on.
type OffsetError struct {
	Topic     string
	Partition int32
	Want, Got int64
}

func (e *OffsetError) Error() string {
	switch {
	case e.Got < e.Want:
		return fmt.Sprintf("seal: %s/%d: offset %d already in the tree, next is %d", e.Topic, e.Partition, e.Got, e.Want)
	default:
		return fmt.Sprintf("seal: %s/%d: offset %d skips offsets %d..%d; the tree needs every offset in order", e.Topic, e.Partition, e.Got, e.Want, e.Got-1)
	}
}

// A Tree is the Merkle tree of one audit topic partition: leaf i is the
// record at offset Base+i. It is not safe for concurrent use.
type Tree struct {
	topic     string
	partition int32
	base      int64
	size      int64
	store     HashStore
	buf       []byte // Append's leaf data, reused
}

// NewTree returns an empty tree in memory for the partition, whose first
// leaf will be the record at offset base. It keeps every stored hash
// (about 64 bytes per leaf), so it answers roots of every size, leaf
// hashes and proofs; NewFrontierTree is a tree that appends and gives its
// current root in bounded memory.
func NewTree(topic string, partition int32, base int64) *Tree {
	t, _ := OpenTree(topic, partition, base, 0, &MemStore{})
	return t
}

// OpenTree returns the tree of size leaves whose stored hashes are in store
// (a tree a ledger persisted). It checks that the store holds the tree's
// last stored hash.
func OpenTree(topic string, partition int32, base, size int64, store HashStore) (*Tree, error) {
	if err := validOrigin(topic, partition); err != nil {
		return nil, err
	}
	if base < 0 || size < 0 {
		return nil, fmt.Errorf("seal: tree with base %d and size %d", base, size)
	}
	if store == nil {
		return nil, errors.New("seal: nil hash store")
	}
	if size > 0 {
		if _, err := store.ReadHashes([]int64{tlog.StoredHashCount(size) - 1}); err != nil {
			return nil, fmt.Errorf("seal: open tree of %d leaves: %w", size, err)
		}
	}
	return &Tree{topic: topic, partition: partition, base: base, size: size, store: store}, nil
}

// Topic is the audit topic of the tree.
func (t *Tree) Topic() string { return t.topic }

// Partition is the audit partition of the tree.
func (t *Tree) Partition() int32 { return t.partition }

// Base is the offset of leaf 0.
func (t *Tree) Base() int64 { return t.base }

// Size is the number of leaves.
func (t *Tree) Size() int64 { return t.size }

// Next is the offset of the next record to append: Base+Size.
func (t *Tree) Next() int64 { return t.base + t.size }

// Append appends the record at offset, which must be Next(), and returns
// its leaf hash (for the ledger's audit entry). A record of another offset
// is refused with an *OffsetError and the tree is unchanged.
func (t *Tree) Append(offset int64, key, value []byte) (tlog.Hash, error) {
	t.buf = appendLeafData(t.buf[:0], t.topic, t.partition, offset, key, value)
	h := tlog.RecordHash(t.buf)
	if cap(t.buf) > 64<<10 {
		t.buf = nil // do not keep a large record's buffer
	}
	return h, t.AppendLeafHash(offset, h)
}

// AppendLeafHash is Append for a record whose leaf hash is already known
// (a ledger's stored leaf hash).
func (t *Tree) AppendLeafHash(offset int64, h tlog.Hash) error {
	if offset != t.Next() {
		return &OffsetError{Topic: t.topic, Partition: t.partition, Want: t.Next(), Got: offset}
	}
	hashes, err := tlog.StoredHashesForRecordHash(t.size, h, t.store)
	if err != nil {
		return fmt.Errorf("seal: append offset %d: %w", offset, err)
	}
	if err := t.store.WriteHashes(tlog.StoredHashIndex(0, t.size), hashes); err != nil {
		return fmt.Errorf("seal: append offset %d: %w", offset, err)
	}
	t.size++
	return nil
}

// Root is the root hash of the tree.
func (t *Tree) Root() (tlog.Hash, error) { return t.RootAt(t.size) }

// RootAt is the root hash of the tree of the first size leaves. Over a
// FrontierStore only the current size is sure to be answered; an older
// size is an error wrapping ErrNotKept.
func (t *Tree) RootAt(size int64) (tlog.Hash, error) {
	if size < 0 || size > t.size {
		return tlog.Hash{}, fmt.Errorf("seal: root of %d leaves in a tree of %d", size, t.size)
	}
	h, err := tlog.TreeHash(size, t.store)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("seal: root of %d leaves in a tree of %d: %w", size, t.size, err)
	}
	return h, nil
}

// LeafHashAt is the leaf hash of the record at offset.
func (t *Tree) LeafHashAt(offset int64) (tlog.Hash, error) {
	i := offset - t.base
	if i < 0 || i >= t.size {
		return tlog.Hash{}, fmt.Errorf("seal: offset %d not in tree %s/%d of offsets %d..%d", offset, t.topic, t.partition, t.base, t.Next()-1)
	}
	h, err := t.store.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
	if err != nil {
		return tlog.Hash{}, err
	}
	return h[0], nil
}

// Checkpoint is the tree's current checkpoint, to Sign.
func (t *Tree) Checkpoint() (Checkpoint, error) {
	root, err := t.Root()
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Topic: t.topic, Partition: t.partition, Base: t.base, Size: t.size, Root: root}, nil
}

// ProveRecord is the inclusion proof of leaf index in the tree of the first
// size leaves (tlog.ProveRecord).
func (t *Tree) ProveRecord(index, size int64) (tlog.RecordProof, error) {
	if size > t.size || index < 0 || index >= size {
		return nil, fmt.Errorf("seal: proof of leaf %d in %d leaves of a tree of %d", index, size, t.size)
	}
	return tlog.ProveRecord(size, index, t.store)
}

// ProveTree is the consistency proof that the tree of the first oldSize
// leaves is a prefix of the tree of the first size leaves (tlog.ProveTree).
func (t *Tree) ProveTree(oldSize, size int64) (tlog.TreeProof, error) {
	if size > t.size || oldSize < 1 || oldSize > size {
		return nil, fmt.Errorf("seal: consistency proof of %d in %d leaves of a tree of %d", oldSize, size, t.size)
	}
	return tlog.ProveTree(size, oldSize, t.store)
}
