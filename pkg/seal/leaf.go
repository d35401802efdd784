// Package seal makes the audit topic tamper-evident: an RFC 6962 Merkle tree
// per audit partition over the records' exact bytes and coordinates
// (golang.org/x/mod/sumdb/tlog), Ed25519-signed checkpoints of it in the
// sumdb/note format, inclusion proofs that verify offline, and a verifier
// that recomputes the trees from the topic and names what was altered,
// dropped, reordered or rewritten.
//
// The package is pure logic: no Kafka, no database. A sealer drives a [Tree]
// per partition from a consumer ([Tree.Append] in offset order, [Sign] of
// [Tree.Checkpoint] from time to time); consentctl drives [Verify] and
// [Tree.Prove]; anyone holding a proof and a verifier key runs [VerifyProof].
//
// Leaf i of a partition's tree is the record at offset Base+i. The offset is
// inside the leaf data, so a dropped, inserted or reordered record changes
// the tree, and a tree with a different Base is a different tree.
package seal

import (
	"encoding/binary"

	"golang.org/x/mod/sumdb/tlog"
)

// leafPrefix starts every leaf's data: the format's name and version,
// then a zero byte.
const leafPrefix = "consentgate audit leaf v1\x00"

// LeafData is the leaf of a record in its partition's tree: an
// unambiguous, versioned byte encoding of the record's coordinates, key and
// value. Version 1, all integers big-endian, no padding, nothing after the
// value:
//
//	bytes  field
//	26     "consentgate audit leaf v1" (25 ASCII bytes) then one 0x00 byte
//	8      len(topic), unsigned 64-bit
//	n      topic, the name's bytes
//	4      partition, signed 32-bit two's complement
//	8      offset, signed 64-bit two's complement
//	1      key presence: 0x00 null key (nothing follows for the key),
//	       0x01 key present (even when empty)
//	8      len(key), unsigned 64-bit (only when present)
//	n      key, the record's exact key bytes (only when present)
//	1      value presence: 0x00 null value, 0x01 present (even when empty)
//	8      len(value), unsigned 64-bit (only when present)
//	n      value, the record's exact value bytes (only when present)
//
// A nil slice is a null key or value; a non-nil empty slice is an empty
// one. The record's timestamp and headers are not part of the leaf.
func LeafData(topic string, partition int32, offset int64, key, value []byte) []byte {
	n := len(leafPrefix) + 8 + len(topic) + 4 + 8 + 1 + 8 + len(key) + 1 + 8 + len(value)
	return appendLeafData(make([]byte, 0, n), topic, partition, offset, key, value)
}

// appendLeafData appends the leaf data to b.
func appendLeafData(b []byte, topic string, partition int32, offset int64, key, value []byte) []byte {
	b = append(b, leafPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(topic)))
	b = append(b, topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(partition))
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = appendBytes(b, key)
	b = appendBytes(b, value)
	return b
}

func appendBytes(b, field []byte) []byte {
	if field == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(len(field)))
	return append(b, field...)
}

// LeafHash is the hash of a record's leaf, tlog.RecordHash(LeafData(...)):
// SHA-256 of a 0x00 byte followed by the leaf data (RFC 6962 leaf hash).
// It is what the ledger stores as an audit entry's leaf hash.
func LeafHash(topic string, partition int32, offset int64, key, value []byte) tlog.Hash {
	return tlog.RecordHash(LeafData(topic, partition, offset, key, value))
}
