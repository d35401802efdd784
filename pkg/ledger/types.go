// Package ledger is the compliance team's relational record of the
// pipeline: every consent change, audit record, revocation notice and dead
// letter, consumed from their Kafka topics into SQLite (the embedded
// default) or PostgreSQL, exactly once, and the queries consentctl and the
// console answer from it (a subject's history, breach scoping,
// completeness, policy versions).
//
// The ledger stores what the topics' records hold about decisions, never an
// event's field values: an audit record holds field paths, not values, and
// of a dead letter only its headers (reason, error code, source
// coordinates) are kept, not its bytes; of the keys topic of
// crypto-shredding only when each data key was created and destroyed (the
// records' Kafka keys and timestamps), never a key.
package ledger

import (
	"fmt"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
)

// Coord is where a record was read: its topic, partition and offset, and
// the Kafka timestamp of the record. (Topic, Partition, Offset) is the
// primary key of every table of records: ingesting a record again is a
// no-op.
type Coord struct {
	Topic     string
	Partition int32
	Offset    int64
	Time      time.Time
}

// Position is the next offset the ledger reads in a partition: every record
// before it is in the ledger. Positions are written in the same transaction
// as the rows they cover.
type Position struct {
	Topic     string
	Partition int32
	Next      int64
	// Last is the RecordHash of the record at Next-1, the last one the
	// position covers: the consumer checks it against the partition before
	// it reads on, so that a partition whose offsets started again (a topic
	// deleted and created again, another cluster) is not taken for the one
	// it read. Nil when not known (a position written before migration 3,
	// or by a caller that does not set it).
	Last []byte
}

// Hold is a partition the ledger no longer reads: what it holds of the
// partition is no longer what the partition holds (its stored position is
// past the partition's end, the record before the position is another
// one, or rows are stored past the position). Reason says which, with
// offsets only. A hold is stored (ledger_holds) and stays until an
// operator removes it.
// Ingest refuses a batch of a held partition whose position is past the
// hold's Next; records before it (read before the partition was found to
// differ, and committed after the hold) are stored.
type Hold struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Next is the ledger's position in the partition when it was held:
	// the offset after the last record it read of it.
	Next   int64     `json:"next_offset"`
	Reason string    `json:"reason"`
	At     time.Time `json:"held_at"`
}

// PartitionError is Ingest refusing a batch because of one partition: it
// is held, or rows are stored at or past its stored position, so that the
// batch's rows could collide with rows of other records and be dropped by
// ON CONFLICT DO NOTHING. Nothing of the batch is written.
type PartitionError struct {
	Topic     string
	Partition int32
	Reason    string
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("partition %s/%d: %s", e.Topic, e.Partition, e.Reason)
}

// ConsentChange is one record of consent.changes.
type ConsentChange struct {
	Coord
	ChangeID           string
	SubjectID          string
	Purpose            string // empty for ERASE
	Action             string // GRANT, DENY, WITHDRAW, ERASE
	LegalBasis         string // CONSENT, LEGITIMATE_INTEREST, CONTRACT
	ExcludedCategories []string
	Source             string
	NoticeVersion      string
	CapturedAt         time.Time
	ExpiresAt          time.Time // zero: no expiry
}

// AuditEntry is one record of consent.audit.
type AuditEntry struct {
	Coord
	// Record is the decoded audit record (version 1 or 2).
	Record audit.Record
	// LeafHash is the hash of the record's leaf in its partition's Merkle
	// tree (seal.LeafHash of its coordinates, key and value bytes): what
	// the sealer's checkpoints commit to.
	LeafHash [32]byte
}

// Notice is one record of consent.revocations.
type Notice struct {
	Coord
	NoticeID  string
	SubjectID string
	Purposes  []string // empty: every purpose (ERASE)
	Action    string   // WITHDRAW, DENY, ERASE
	Since     time.Time
	ChangeID  string
	Reason    string
	IssuedAt  time.Time
}

// DeadLetter is one record of a dead-letter topic: its headers only (the
// bytes are the input event as it was and may hold personal data).
type DeadLetter struct {
	Coord
	Reason          string // consentgate.dlq.reason
	Error           string // consentgate.dlq.error (a code, never a value)
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64 // -1 when the header is missing
	EventID         string
}

// Undecodable is a record of one of the ledger's topics that did not decode
// (a record of another schema, a corrupt record). It is kept by coordinates
// and error so that completeness and verification can name it; its bytes
// are not stored.
type Undecodable struct {
	Coord
	Error string
	// LeafHash is the record's leaf hash when it is a record of the audit
	// topic (nil otherwise): the sealer seals every record of the audit
	// topic, those that are not audit records too, so that a stray or
	// forged record neither breaks the seal nor hides in a gap.
	LeafHash []byte
}

// Checkpoint is a signed checkpoint of an audit partition's Merkle tree
// (see pkg/seal), as published on consent.audit.checkpoints.
type Checkpoint struct {
	AuditTopic string
	Partition  int32
	// Size is the number of leaves (audit records, from offset Base on)
	// the tree covers; Root is its root hash.
	Base int64
	Size int64
	Root [32]byte
	// Note is the whole signed note (sumdb/note format), as published.
	Note        []byte
	PublishedAt time.Time
	// Coord of the checkpoint record on the checkpoints topic; zero
	// before it is published.
	Coord
}

// DataKeyEvent is a record of the keys topic about one data key (Kafka
// key "key:<key id>:<subject>"): its creation (a record with a value;
// the value, the wrapped key, is neither decoded nor kept) or, Destroyed,
// its destruction (a tombstone). Both go to the key's one row of
// data_keys.
type DataKeyEvent struct {
	Coord
	SubjectID string
	// KeyID is the key's id, 32 lowercase hex digits.
	KeyID     string
	Destroyed bool
}

// KeyErasure is an erasure marker of the keys topic (Kafka key
// "erased:<subject>"): every data key of the subject at a lower offset is
// dead from then on. Only its coordinates and timestamp are kept.
type KeyErasure struct {
	Coord
	SubjectID string
}

// Batch is what one ingest transaction writes: rows of any kind, and the
// positions that cover them. Ingest writes the rows and the positions
// together or not at all; a row already in the ledger (same Coord) is left
// as it is.
type Batch struct {
	Changes     []ConsentChange
	Audits      []AuditEntry
	Notices     []Notice
	DeadLetters []DeadLetter
	Undecodable []Undecodable
	Checkpoints []Checkpoint
	DataKeys    []DataKeyEvent
	KeyErasures []KeyErasure
	Positions   []Position
	// UnknownKeys counts the records of a keys topic whose Kafka key is
	// none the ledger knows: they are skipped (nothing of them is
	// written; their positions are).
	UnknownKeys int
}
