package ledger

import (
	"context"
	"fmt"
	"time"
)

// Stats is the size of the ledger: rows per table, every position, and the
// held partitions.
type Stats struct {
	Backend    string           `json:"backend"`
	Migrations []int            `json:"migrations"`
	Tables     map[string]int64 `json:"tables"`
	Positions  []Position       `json:"positions"`
	// Holds are the partitions the ledger no longer reads (ledger_holds):
	// while any is listed, what the ledger holds of that partition stops
	// at its position, and the ledger is not ready.
	Holds []HeldPartition `json:"holds"`
	// Releases are the holds operators released (ledger_hold_releases),
	// in release order: who, when, why.
	Releases []HoldRelease `json:"hold_releases"`
}

// HeldPartition is a hold as Stats shows it: coordinates, the ledger's
// position, the reason (offsets only, no personal data) and since when.
type HeldPartition struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Next      int64     `json:"next_offset"`
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"`
}

// ledgerTables are the tables of records, in the order Stats lists them.
var ledgerTables = []string{"consent_changes", "audit_records", "audit_outputs", "revocation_notices", "dead_letters",
	"undecodable_records", "audit_checkpoints", "data_keys", "key_erasures"}

// Stats counts the rows of every table and lists the positions and the
// holds, ordered by topic and partition.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	st := &Stats{Backend: s.d.name, Tables: map[string]int64{}, Positions: []Position{}, Holds: []HeldPartition{}}
	var err error
	if st.Migrations, err = s.Migrations(ctx); err != nil {
		return nil, fmt.Errorf("ledger: stats: %w", err)
	}
	for _, t := range ledgerTables {
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("ledger: stats: %s: %w", t, err)
		}
		st.Tables[t] = n
	}
	rows, err := s.db.QueryContext(ctx, "SELECT topic, partition_id, next_offset FROM ledger_positions ORDER BY topic, partition_id")
	if err != nil {
		return nil, fmt.Errorf("ledger: stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p Position
		if err := rows.Scan(&p.Topic, &p.Partition, &p.Next); err != nil {
			return nil, fmt.Errorf("ledger: stats: %w", err)
		}
		st.Positions = append(st.Positions, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: stats: %w", err)
	}
	holds, err := s.Holds(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: stats: %w", err)
	}
	st.Holds = heldPartitions(holds)
	if st.Releases, err = s.HoldReleases(ctx); err != nil {
		return nil, fmt.Errorf("ledger: stats: %w", err)
	}
	return st, nil
}

// heldPartitions is holds as Stats lists them (never nil).
func heldPartitions(holds []Hold) []HeldPartition {
	out := make([]HeldPartition, 0, len(holds))
	for _, h := range holds {
		out = append(out, HeldPartition{Topic: h.Topic, Partition: h.Partition, Next: h.Next, Reason: h.Reason, Since: h.At})
	}
	return out
}
