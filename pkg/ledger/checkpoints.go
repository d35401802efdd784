package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// Checkpoints returns the checkpoints of one audit partition, by tree size
// (then base, then root): every one the ledger holds, so that two
// checkpoints of one size with different roots both show.
func (s *Store) Checkpoints(ctx context.Context, auditTopic string, partition int32) ([]Checkpoint, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT audit_topic, audit_partition, tree_base, tree_size, root_hash, note, published_at,
topic, partition_id, record_offset, record_time FROM audit_checkpoints WHERE audit_topic = ? AND audit_partition = ?
ORDER BY tree_size, tree_base, root_hash`), auditTopic, partition)
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoints: %w", err)
	}
	defer rows.Close()
	out := []Checkpoint{}
	for rows.Next() {
		var c Checkpoint
		var root []byte
		var published, recTime sql.NullInt64
		if err := rows.Scan(&c.AuditTopic, &c.Partition, &c.Base, &c.Size, &root, &c.Note, &published, &c.Coord.Topic,
			&c.Coord.Partition, &c.Coord.Offset, &recTime); err != nil {
			return nil, fmt.Errorf("ledger: checkpoints: %w", err)
		}
		if len(root) != len(c.Root) {
			return nil, fmt.Errorf("ledger: checkpoints: a root hash of %d bytes", len(root))
		}
		copy(c.Root[:], root)
		c.PublishedAt, c.Coord.Time = fromMS(published), fromMS(recTime)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: checkpoints: %w", err)
	}
	return out, nil
}

// LeafHashes calls fn with the offset and leaf hash of every audit record
// of one audit partition with offset in [from, to), in offset order,
// without loading them all. It stops at fn's first error and returns it.
func (s *Store) LeafHashes(ctx context.Context, auditTopic string, partition int32, from, to int64, fn func(offset int64, leaf [32]byte) error) error {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT record_offset, leaf_hash FROM audit_records
WHERE topic = ? AND partition_id = ? AND record_offset >= ? AND record_offset < ? ORDER BY record_offset`), auditTopic, partition, from, to)
	if err != nil {
		return fmt.Errorf("ledger: leaf hashes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var off int64
		var h []byte
		if err := rows.Scan(&off, &h); err != nil {
			return fmt.Errorf("ledger: leaf hashes: %w", err)
		}
		var leaf [32]byte
		if len(h) != len(leaf) {
			return fmt.Errorf("ledger: leaf hashes: offset %d has a leaf hash of %d bytes", off, len(h))
		}
		copy(leaf[:], h)
		if err := fn(off, leaf); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: leaf hashes: %w", err)
	}
	return nil
}
