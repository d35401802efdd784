package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"math"
)

// The sealer's queries (services/ledger): a partition's checkpoints a page
// at a time, in the order of the table's key (audit topic, partition,
// base, size, root), without their notes, so that the sealer reads the
// checkpoints it has not checked yet by a range of that key, and its
// memory does not grow with the number of checkpoints.

const (
	checkpointKeyColumns = `audit_topic, audit_partition, tree_base, tree_size, root_hash, published_at,
topic, partition_id, record_offset, record_time`
	checkpointsOfBaseSQL = `SELECT ` + checkpointKeyColumns + ` FROM audit_checkpoints
WHERE audit_topic = ? AND audit_partition = ? AND tree_base = ? AND tree_size >= ? AND (tree_size > ? OR root_hash > ?)
ORDER BY tree_size, root_hash LIMIT ?`
	firstCheckpointSQL = `SELECT ` + checkpointKeyColumns + ` FROM audit_checkpoints
WHERE audit_topic = ? AND audit_partition = ? ORDER BY tree_base, tree_size, root_hash LIMIT 1`
	checkpointPartitionsSQL  = `SELECT DISTINCT audit_partition FROM audit_checkpoints WHERE audit_topic = ? ORDER BY audit_partition`
	checkpointOfBaseAboveSQL = `SELECT ` + checkpointKeyColumns + ` FROM audit_checkpoints
WHERE audit_topic = ? AND audit_partition = ? AND tree_base > ? ORDER BY tree_base, tree_size, root_hash LIMIT 1`
)

// CheckpointsOfBase returns up to limit checkpoints of one audit partition
// whose tree base is base, in (size, root) order, after (size afterSize,
// root afterRoot): every checkpoint of a larger size, and those of size
// afterSize with a larger root (bytewise). Their Note is nil.
func (s *Store) CheckpointsOfBase(ctx context.Context, auditTopic string, partition int32, base, afterSize int64, afterRoot [32]byte, limit int) ([]Checkpoint, error) {
	return s.checkpointKeys(ctx, checkpointsOfBaseSQL, auditTopic, partition, base, afterSize, afterSize, afterRoot[:], limit)
}

// CheckpointOfBaseAbove returns the first checkpoint, in (base, size,
// root) order, of one audit partition whose tree base is larger than base
// (math.MinInt64: the partition's first checkpoint), and whether there is
// one. Its Note is nil.
func (s *Store) CheckpointOfBaseAbove(ctx context.Context, auditTopic string, partition int32, base int64) (Checkpoint, bool, error) {
	var cps []Checkpoint
	var err error
	if base == math.MinInt64 {
		cps, err = s.checkpointKeys(ctx, firstCheckpointSQL, auditTopic, partition)
	} else {
		cps, err = s.checkpointKeys(ctx, checkpointOfBaseAboveSQL, auditTopic, partition, base)
	}
	if err != nil || len(cps) == 0 {
		return Checkpoint{}, false, err
	}
	return cps[0], true, nil
}

// CheckpointPartitions lists, in order, the partitions of the audit topic
// that have checkpoints in the ledger (with or without records).
func (s *Store) CheckpointPartitions(ctx context.Context, auditTopic string) ([]int32, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(checkpointPartitionsSQL), auditTopic)
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoint partitions: %w", err)
	}
	defer rows.Close()
	var out []int32
	for rows.Next() {
		var p int32
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("ledger: checkpoint partitions: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: checkpoint partitions: %w", err)
	}
	return out, nil
}

func (s *Store) checkpointKeys(ctx context.Context, query string, args ...any) ([]Checkpoint, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var c Checkpoint
		var root []byte
		var published, recTime sql.NullInt64
		if err := rows.Scan(&c.AuditTopic, &c.Partition, &c.Base, &c.Size, &root, &published, &c.Coord.Topic,
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
