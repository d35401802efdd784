package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// OffsetRange is the offsets [Start, End) of a partition.
type OffsetRange struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// CompletenessReport says whether every input offset of a topic has
// exactly one audit record.
type CompletenessReport struct {
	SourceTopic string `json:"source_topic"`
	// Complete: at least one partition is known (audited or expected),
	// and no partition has a gap, a duplicate that disagrees, or (with
	// expected ranges) a missing partition. Duplicates that agree (a
	// restart before commit decides an event again, the same way) do not
	// make it incomplete.
	Complete   bool                    `json:"complete"`
	Partitions []PartitionCompleteness `json:"partitions"`
}

// PartitionCompleteness is the audit coverage of one input partition.
type PartitionCompleteness struct {
	Partition int32 `json:"partition"`
	// Expected is the range asked for; nil when none was given (then gaps
	// are looked for between the first and last audited offsets).
	Expected *OffsetRange `json:"expected,omitempty"`
	// Audited spans the lowest to the highest audited offset (empty when
	// there is none).
	Audited OffsetRange `json:"audited"`
	// Records counts the audit records, Offsets the distinct offsets.
	Records int64 `json:"records"`
	Offsets int64 `json:"offsets"`
	// Gaps are the ranges with no audit record.
	Gaps           []OffsetRange `json:"gaps"`
	MissingOffsets int64         `json:"missing_offsets"`
	// Duplicates are the offsets with more than one audit record;
	// Disagreeing counts those whose copies decided differently.
	Duplicates  []Duplicate `json:"duplicates"`
	Disagreeing int64       `json:"disagreeing"`
	// Outside counts audited offsets outside Expected.
	Outside  int64 `json:"outside"`
	Complete bool  `json:"complete"`
}

// Duplicate is an input offset audited more than once. Agree says whether
// every copy has the same outcome, dead-letter reason and decisions.
type Duplicate struct {
	Offset int64 `json:"offset"`
	Count  int   `json:"count"`
	Agree  bool  `json:"agree"`
}

// Completeness checks the audit records of sourceTopic: per partition, the
// audited range, the gaps and the duplicates. expected, optional, gives the
// input range [start, end) of partitions (e.g. from the topic's start and
// end offsets): gaps are then looked for over it, and a partition without
// any audit record is one gap. It reads the records in offset order from
// an index, never all at once.
func (s *Store) Completeness(ctx context.Context, sourceTopic string, expected map[int32]OffsetRange) (*CompletenessReport, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT source_partition, source_offset, decision_digest FROM audit_records
WHERE source_topic = ? ORDER BY source_partition, source_offset, decision_digest`), sourceTopic)
	if err != nil {
		return nil, fmt.Errorf("ledger: completeness: %w", err)
	}
	defer rows.Close()
	rep := &CompletenessReport{SourceTopic: sourceTopic, Partitions: []PartitionCompleteness{}}
	var cur *PartitionCompleteness
	var exp OffsetRange
	hasExp := false
	// next is the first offset not yet accounted for in the partition.
	var next int64
	var prevOff, prevDigest int64
	var dup *Duplicate
	finish := func() {
		if cur == nil {
			return
		}
		if hasExp && next < exp.End {
			cur.Gaps = append(cur.Gaps, OffsetRange{next, exp.End})
		}
		rep.Partitions = append(rep.Partitions, *cur)
		cur, dup = nil, nil
	}
	for rows.Next() {
		var part int32
		var off, dg int64
		if err := rows.Scan(&part, &off, &dg); err != nil {
			return nil, fmt.Errorf("ledger: completeness: %w", err)
		}
		if cur == nil || part != cur.Partition {
			finish()
			cur = &PartitionCompleteness{Partition: part, Gaps: []OffsetRange{}, Duplicates: []Duplicate{}, Audited: OffsetRange{off, off + 1}}
			exp, hasExp = expected[part]
			next = off
			if hasExp {
				e := exp
				cur.Expected = &e
				next = exp.Start
			}
			prevOff = off - 1
		}
		cur.Records++
		cur.Audited.End = off + 1
		if off == prevOff {
			if dup == nil || dup.Offset != off {
				cur.Duplicates = append(cur.Duplicates, Duplicate{Offset: off, Count: 1, Agree: true})
				dup = &cur.Duplicates[len(cur.Duplicates)-1]
			}
			dup.Count++
			if dg != prevDigest && dup.Agree {
				dup.Agree = false
				cur.Disagreeing++
			}
			continue
		}
		prevOff, prevDigest = off, dg
		cur.Offsets++
		if hasExp && (off < exp.Start || off >= exp.End) {
			cur.Outside++
			continue
		}
		if off > next {
			cur.Gaps = append(cur.Gaps, OffsetRange{next, off})
		}
		next = off + 1
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: completeness: %w", err)
	}
	finish()
	// Expected partitions without any audit record.
	for p, r := range expected {
		if !slices.ContainsFunc(rep.Partitions, func(pc PartitionCompleteness) bool { return pc.Partition == p }) {
			e := r
			pc := PartitionCompleteness{Partition: p, Expected: &e, Gaps: []OffsetRange{}, Duplicates: []Duplicate{}}
			if r.End > r.Start {
				pc.Gaps = append(pc.Gaps, r)
			}
			rep.Partitions = append(rep.Partitions, pc)
		}
	}
	slices.SortFunc(rep.Partitions, func(a, b PartitionCompleteness) int { return cmp.Compare(a.Partition, b.Partition) })
	// Nothing audited and no range to check: nothing shows an input was
	// accounted for (a mistyped topic, an audit not consumed yet), so it
	// is not complete.
	rep.Complete = len(rep.Partitions) > 0
	for i := range rep.Partitions {
		pc := &rep.Partitions[i]
		for _, g := range pc.Gaps {
			pc.MissingOffsets += g.End - g.Start
		}
		pc.Complete = len(pc.Gaps) == 0 && pc.Disagreeing == 0
		rep.Complete = rep.Complete && pc.Complete
	}
	return rep, nil
}
