package seal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ProofFormat names version 1 of the inclusion proof encoding.
const ProofFormat = "consentgate-audit-inclusion-proof/v1"

// MaxProofSize bounds the encoded proofs DecodeProof reads.
const MaxProofSize = 64 << 10

// A Proof is an inclusion proof: the record at Offset of Topic/Partition
// is leaf Index of the tree of TreeSize leaves that Checkpoint (a signed
// note) seals. It holds the record's leaf hash, not its leaf data: the leaf
// data holds the record's key, the subject id, and its value; whoever holds
// the record supplies its bytes to VerifyProof, and the proof alone gives
// away no personal data.
//
// Encoded (Encode, DecodeProof) it is one JSON object, hashes in standard
// base64:
//
//	{"format":"consentgate-audit-inclusion-proof/v1",
//	 "topic":"consent.audit","partition":0,"offset":1041,
//	 "index":1041,"tree_size":2000,
//	 "leaf_hash":"<base64>","proof":["<base64>",...],
//	 "checkpoint":"<the signed checkpoint note>"}
type Proof struct {
	Format     string      `json:"format"`
	Topic      string      `json:"topic"`
	Partition  int32       `json:"partition"`
	Offset     int64       `json:"offset"`
	Index      int64       `json:"index"`
	TreeSize   int64       `json:"tree_size"`
	LeafHash   tlog.Hash   `json:"leaf_hash"`
	Hashes     []tlog.Hash `json:"proof"`
	Checkpoint string      `json:"checkpoint"`
}

// Prove is the inclusion proof of the record at offset against the signed
// checkpoint note, which must verify with verifiers, be of the tree's
// partition and base, cover offset, and have the root the tree has at the
// checkpoint's size (a tree that disagrees with the checkpoint gives no
// proof).
func (t *Tree) Prove(offset int64, checkpoint []byte, verifiers note.Verifiers) (*Proof, error) {
	c, err := Open(checkpoint, verifiers)
	if err != nil {
		return nil, err
	}
	if c.Topic != t.topic || c.Partition != t.partition || c.Base != t.base {
		return nil, fmt.Errorf("seal: checkpoint of %s base %d for the tree of %s base %d", c.Origin(), c.Base, Origin(t.topic, t.partition), t.base)
	}
	index := offset - t.base
	if index < 0 || index >= c.Size {
		return nil, fmt.Errorf("seal: offset %d is not in the checkpoint of offsets %d..%d", offset, c.Base, c.Base+c.Size-1)
	}
	if c.Size > t.size {
		return nil, fmt.Errorf("seal: checkpoint of %d leaves, tree has %d", c.Size, t.size)
	}
	root, err := t.RootAt(c.Size)
	if err != nil {
		return nil, err
	}
	if root != c.Root {
		return nil, fmt.Errorf("seal: tree's root at size %d is not the checkpoint's: %w", c.Size, ErrInconsistent)
	}
	leaf, err := t.LeafHashAt(offset)
	if err != nil {
		return nil, err
	}
	hashes, err := t.ProveRecord(index, c.Size)
	if err != nil {
		return nil, err
	}
	return &Proof{
		Format: ProofFormat, Topic: t.topic, Partition: t.partition, Offset: offset,
		Index: index, TreeSize: c.Size, LeafHash: leaf, Hashes: hashes,
		Checkpoint: string(checkpoint),
	}, nil
}

// Encode is the proof's JSON encoding, with a final newline.
func (p *Proof) Encode() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeProof decodes an encoded proof strictly: one JSON object of the
// format's fields only, of format ProofFormat, with one hash per tree level
// at most. It verifies nothing else: VerifyProof does.
func DecodeProof(b []byte) (*Proof, error) {
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("seal: proof of %d bytes: %w", len(b), ErrMalformed)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var p Proof
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("seal: decode proof: %v: %w", err, ErrMalformed)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("seal: decode proof: data after the proof: %w", ErrMalformed)
	}
	if p.Format != ProofFormat {
		return nil, fmt.Errorf("seal: proof format %q, want %q: %w", p.Format, ProofFormat, ErrMalformed)
	}
	if len(p.Hashes) > 64 {
		return nil, fmt.Errorf("seal: proof of %d hashes: %w", len(p.Hashes), ErrMalformed)
	}
	return &p, nil
}

// VerifyProof checks an encoded inclusion proof offline: the checkpoint
// note's signature by one of verifiers, that the checkpoint is of the
// proof's partition and size and covers its offset as leaf Index, and
// tlog.CheckRecord of the leaf hash against the checkpoint's root. When
// record is not nil (the holder of the audit record supplies its offset,
// key and value bytes) its leaf hash is recomputed and must be the proof's;
// when it is nil, only that a record with the proof's leaf hash is sealed
// at that offset is checked. It returns the decoded proof and the
// checkpoint. Errors wrap ErrMalformed, ErrBadSignature, ErrUnknownKey or
// ErrInconsistent.
func VerifyProof(encoded []byte, record *Record, verifiers note.Verifiers) (*Proof, Checkpoint, error) {
	p, err := DecodeProof(encoded)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	c, err := Open([]byte(p.Checkpoint), verifiers)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	switch {
	case c.Topic != p.Topic || c.Partition != p.Partition:
		return nil, Checkpoint{}, fmt.Errorf("seal: proof for %s with a checkpoint of %s: %w", Origin(p.Topic, p.Partition), c.Origin(), ErrInconsistent)
	case c.Size != p.TreeSize:
		return nil, Checkpoint{}, fmt.Errorf("seal: proof for tree size %d with a checkpoint of size %d: %w", p.TreeSize, c.Size, ErrInconsistent)
	case p.Offset < c.Base || p.Index != p.Offset-c.Base || p.Index >= c.Size:
		return nil, Checkpoint{}, fmt.Errorf("seal: proof of offset %d as leaf %d, the checkpoint holds offsets %d..%d: %w", p.Offset, p.Index, c.Base, c.Base+c.Size-1, ErrInconsistent)
	}
	if record != nil {
		if record.Offset != p.Offset {
			return nil, Checkpoint{}, fmt.Errorf("seal: record at offset %d, proof of offset %d: %w", record.Offset, p.Offset, ErrInconsistent)
		}
		if LeafHash(p.Topic, p.Partition, record.Offset, record.Key, record.Value) != p.LeafHash {
			return nil, Checkpoint{}, fmt.Errorf("seal: the record's leaf hash is not the proof's: the record differs from the one sealed: %w", ErrInconsistent)
		}
	}
	if err := tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.Index, p.LeafHash); err != nil {
		return nil, Checkpoint{}, fmt.Errorf("seal: leaf %d is not in the checkpoint's tree: %w", p.Index, ErrInconsistent)
	}
	return p, c, nil
}
