package ledger

import (
	"context"
	"fmt"
)

// Leaf is the leaf hash of the audit record at Offset (see AuditEntry).
type Leaf struct {
	Offset int64
	Hash   [32]byte
}

// AuditPartitions lists the partitions of the audit topic that have
// records in the ledger, in order.
func (s *Store) AuditPartitions(ctx context.Context, topic string) ([]int32, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT DISTINCT partition_id FROM audit_records WHERE topic = ?
		UNION SELECT DISTINCT partition_id FROM undecodable_records WHERE topic = ? AND leaf_hash IS NOT NULL ORDER BY partition_id`), topic, topic)
	if err != nil {
		return nil, fmt.Errorf("ledger: audit partitions: %w", err)
	}
	defer rows.Close()
	var out []int32
	for rows.Next() {
		var p int32
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("ledger: audit partitions: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Leaves returns up to limit leaf hashes of the partition's records from
// offset from on, in offset order: its audit records and the records of
// the audit topic that did not decode (Undecodable.LeafHash).
func (s *Store) Leaves(ctx context.Context, topic string, partition int32, from int64, limit int) ([]Leaf, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT record_offset, leaf_hash FROM (
		SELECT record_offset, leaf_hash FROM audit_records WHERE topic = ? AND partition_id = ? AND record_offset >= ?
		UNION ALL
		SELECT record_offset, leaf_hash FROM undecodable_records WHERE topic = ? AND partition_id = ? AND record_offset >= ? AND leaf_hash IS NOT NULL
	) l ORDER BY record_offset LIMIT ?`), topic, partition, from, topic, partition, from, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: leaves: %w", err)
	}
	defer rows.Close()
	out := make([]Leaf, 0, min(limit, 4096))
	for rows.Next() {
		var l Leaf
		var h []byte
		if err := rows.Scan(&l.Offset, &h); err != nil {
			return nil, fmt.Errorf("ledger: leaves: %w", err)
		}
		if len(h) != len(l.Hash) {
			return nil, fmt.Errorf("ledger: leaf hash of %s/%d@%d has %d bytes", topic, partition, l.Offset, len(h))
		}
		copy(l.Hash[:], h)
		out = append(out, l)
	}
	return out, rows.Err()
}

// AuditsOfEvent returns where the audit records of an event id are, in
// audit order (an event decided again after a restart has more than one).
func (s *Store) AuditsOfEvent(ctx context.Context, eventID string) ([]Coords, error) {
	forms := s.textForms(eventID)
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT topic, partition_id, record_offset FROM audit_records WHERE `+inForms("event_id", forms)+`
		ORDER BY topic, partition_id, record_offset`), forms...)
	if err != nil {
		return nil, fmt.Errorf("ledger: audits of an event: %w", err)
	}
	defer rows.Close()
	var out []Coords
	for rows.Next() {
		var c Coords
		if err := rows.Scan(&c.Topic, &c.Partition, &c.Offset); err != nil {
			return nil, fmt.Errorf("ledger: audits of an event: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
