package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// PolicyUse is when one policy version decided events.
type PolicyUse struct {
	PolicyVersion string    `json:"policy_version"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	Records       int64     `json:"records"`
	// Streams are the streams of the version's decisions, read from its
	// first and last decided record (one policy version has one set of
	// streams) and from every version 1 record (which holds one stream's
	// decision), by name.
	Streams []string `json:"streams"`
}

// Policies returns every policy version in the audit records, ordered by
// first use (then version).
func (s *Store) Policies(ctx context.Context) ([]PolicyUse, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT policy_version, MIN(processed_at), MAX(processed_at), COUNT(*)
FROM audit_records GROUP BY policy_version`)
	if err != nil {
		return nil, fmt.Errorf("ledger: policies: %w", err)
	}
	out := []PolicyUse{}
	for rows.Next() {
		var p PolicyUse
		var first, last int64
		if err := rows.Scan(&p.PolicyVersion, &first, &last, &p.Records); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ledger: policies: %w", err)
		}
		p.First, p.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: policies: %w", err)
	}
	for i := range out {
		p := &out[i]
		seen := map[string]bool{}
		for _, dir := range []string{"ASC", "DESC"} {
			var ds []string
			r, err := s.db.QueryContext(ctx, s.d.q(`SELECT decisions FROM audit_records WHERE policy_version = ? AND outcome = 'DECIDED'
ORDER BY processed_at `+dir+` LIMIT 1`), p.PolicyVersion)
			if err != nil {
				return nil, fmt.Errorf("ledger: policies: %w", err)
			}
			for r.Next() {
				var d string
				if err := r.Scan(&d); err != nil {
					r.Close()
					return nil, fmt.Errorf("ledger: policies: %w", err)
				}
				ds = append(ds, d)
			}
			r.Close()
			if err := r.Err(); err != nil {
				return nil, fmt.Errorf("ledger: policies: %w", err)
			}
			for _, d := range ds {
				var decs []StreamDecision
				if err := json.Unmarshal([]byte(d), &decs); err != nil {
					return nil, fmt.Errorf("ledger: policies: decisions: %w", err)
				}
				for _, sd := range decs {
					seen[sd.Stream] = true
				}
			}
		}
		// A version 1 record holds the decision of one stream only (one
		// record per event and stream): its first and last records do
		// not name the version's streams, every record's stream does.
		first := "json_extract(decisions, '$[0].stream')"
		if s.d.dollar {
			first = "(decisions::json -> 0 ->> 'stream')"
		}
		r, err := s.db.QueryContext(ctx, s.d.q(`SELECT DISTINCT `+first+` FROM audit_records
WHERE policy_version = ? AND record_version = 1`), p.PolicyVersion)
		if err != nil {
			return nil, fmt.Errorf("ledger: policies: version 1 streams: %w", err)
		}
		for r.Next() {
			var st sql.NullString
			if err := r.Scan(&st); err != nil {
				r.Close()
				return nil, fmt.Errorf("ledger: policies: version 1 streams: %w", err)
			}
			if st.Valid {
				seen[st.String] = true
			}
		}
		r.Close()
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("ledger: policies: version 1 streams: %w", err)
		}
		p.Streams = sortedKeys(seen)
	}
	slices.SortFunc(out, func(a, b PolicyUse) int {
		return cmp.Or(a.First.Compare(b.First), cmp.Compare(a.PolicyVersion, b.PolicyVersion))
	})
	return out, nil
}
