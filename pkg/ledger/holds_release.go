package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotHeld is Release of a partition that is not held.
var ErrNotHeld = errors.New("the partition is not held")

// HoldRelease is an operator's decision that a held partition be read
// again: who decided, when and why. Release keeps it in the ledger
// (ledger_hold_releases, with the hold it ended); HoldReleases lists them.
type HoldRelease struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// By is who decided (an operator, not a data subject); Reason why
	// (what was checked: the cluster pointed back, …). Both are required.
	By     string `json:"released_by"`
	Reason string `json:"release_reason"`
	// At is when; zero is now.
	At time.Time `json:"released_at"`
	// Hold is the hold released (set by Release and HoldReleases).
	Hold Hold `json:"hold"`
}

// Release deletes the hold of r's partition, once an operator has decided
// that the partition may be read again, and records the release with the
// hold it ended, in one transaction; it returns the hold it deleted
// (ErrNotHeld when there was none). It changes nothing else: the ledger,
// when it starts next, checks the partition against its stored position
// again, and holds it again if it still differs. A running ledger keeps
// the partition unread until it restarts.
func (s *Store) Release(ctx context.Context, r HoldRelease) (Hold, error) {
	if r.Topic == "" || r.Partition < 0 {
		return Hold{}, fmt.Errorf("ledger: release: invalid partition (topic %q, partition %d)", r.Topic, r.Partition)
	}
	if strings.TrimSpace(r.By) == "" || strings.TrimSpace(r.Reason) == "" {
		return Hold{}, errors.New("ledger: release: who releases the partition and why are required")
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	if s.pool == nil {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Hold{}, fmt.Errorf("ledger: release %s/%d: %w", r.Topic, r.Partition, err)
	}
	defer func() { _ = tx.Rollback() }()
	var h Hold
	var at int64
	err = tx.QueryRowContext(ctx, s.d.q(`DELETE FROM ledger_holds WHERE topic = ? AND partition_id = ?
RETURNING topic, partition_id, next_offset, reason, held_at`), r.Topic, r.Partition).Scan(&h.Topic, &h.Partition, &h.Next, &h.Reason, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Hold{}, fmt.Errorf("ledger: release %s/%d: %w", r.Topic, r.Partition, ErrNotHeld)
	case err != nil:
		return Hold{}, fmt.Errorf("ledger: release %s/%d: %w", r.Topic, r.Partition, err)
	}
	h.At = time.UnixMilli(at).UTC()
	if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO ledger_hold_releases (topic, partition_id, next_offset, hold_reason, held_at,
released_by, release_reason, released_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), h.Topic, h.Partition, h.Next, h.Reason, at,
		storeText(r.By), storeText(r.Reason), r.At.UnixMilli()); err != nil {
		return Hold{}, fmt.Errorf("ledger: release %s/%d: record the release: %w", r.Topic, r.Partition, err)
	}
	if err := tx.Commit(); err != nil {
		return Hold{}, fmt.Errorf("ledger: release %s/%d: %w", r.Topic, r.Partition, err)
	}
	return h, nil
}

// HoldReleases lists every release of a hold the ledger keeps, in release
// order.
func (s *Store) HoldReleases(ctx context.Context) ([]HoldRelease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT topic, partition_id, next_offset, hold_reason, held_at, released_by, release_reason, released_at
FROM ledger_hold_releases ORDER BY released_at, topic, partition_id`)
	if err != nil {
		return nil, fmt.Errorf("ledger: hold releases: %w", err)
	}
	defer rows.Close()
	out := []HoldRelease{}
	for rows.Next() {
		var r HoldRelease
		var held, released int64
		if err := rows.Scan(&r.Topic, &r.Partition, &r.Hold.Next, &r.Hold.Reason, &held, &r.By, &r.Reason, &released); err != nil {
			return nil, fmt.Errorf("ledger: hold releases: %w", err)
		}
		r.Hold.Topic, r.Hold.Partition, r.Hold.At, r.At = r.Topic, r.Partition, time.UnixMilli(held).UTC(), time.UnixMilli(released).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: hold releases: %w", err)
	}
	return out, nil
}

// AuditHolds lists the held partitions of the audit topic, ordered by
// topic and partition: those of auditTopic, and those of any topic the
// ledger holds audit records, audit-topic records that did not decode, or
// checkpoints of. While one is held, the audit records it holds past the
// ledger's position are not in the ledger, so the completeness of any
// input topic cannot be shown.
func (s *Store) AuditHolds(ctx context.Context, auditTopic string) ([]Hold, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT h.topic, h.partition_id, h.next_offset, h.reason, h.held_at FROM ledger_holds h
WHERE h.topic = ?
   OR EXISTS (SELECT 1 FROM audit_records a WHERE a.topic = h.topic)
   OR EXISTS (SELECT 1 FROM undecodable_records u WHERE u.topic = h.topic AND u.leaf_hash IS NOT NULL)
   OR EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.audit_topic = h.topic)
ORDER BY h.topic, h.partition_id`), auditTopic)
	if err != nil {
		return nil, fmt.Errorf("ledger: audit holds: %w", err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var h Hold
		var at int64
		if err := rows.Scan(&h.Topic, &h.Partition, &h.Next, &h.Reason, &at); err != nil {
			return nil, fmt.Errorf("ledger: audit holds: %w", err)
		}
		h.At = time.UnixMilli(at).UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: audit holds: %w", err)
	}
	return out, nil
}
