package ledger

import (
	"context"
	"fmt"
)

// Stats is the size of the ledger: rows per table and every position.
type Stats struct {
	Backend    string           `json:"backend"`
	Migrations []int            `json:"migrations"`
	Tables     map[string]int64 `json:"tables"`
	Positions  []Position       `json:"positions"`
}

// ledgerTables are the tables of records, in the order Stats lists them.
var ledgerTables = []string{"consent_changes", "audit_records", "audit_outputs", "revocation_notices", "dead_letters",
	"undecodable_records", "audit_checkpoints"}

// Stats counts the rows of every table and lists the positions, ordered by
// topic and partition.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	st := &Stats{Backend: s.d.name, Tables: map[string]int64{}, Positions: []Position{}}
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
	return st, nil
}
