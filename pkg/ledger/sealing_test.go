package ledger

import (
	"context"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestSealerCheckpointQueries: CheckpointsOfBase pages through one base's
// checkpoints in (size, root) order from a position, without notes, and
// CheckpointOfBaseAbove finds the first checkpoint and one of another base.
func TestSealerCheckpointQueries(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		cp := func(base, size int64, root byte, off int64) Checkpoint {
			return Checkpoint{AuditTopic: "consent.audit", Partition: 1, Base: base, Size: size, Root: [32]byte{root}, Note: []byte("note"),
				Coord: Coord{Topic: "consent.audit.checkpoints", Partition: 0, Offset: off, Time: t0}}
		}
		all := []Checkpoint{cp(0, 5, 2, 0), cp(0, 3, 1, 1), cp(0, 5, 9, 2), cp(0, 0, 0, 3), cp(7, 2, 4, 4), cp(0, 8, 1, 5),
			{AuditTopic: "consent.audit", Partition: 2, Base: 0, Size: 4, Root: [32]byte{3}, Note: []byte("n"), Coord: Coord{Topic: "consent.audit.checkpoints", Offset: 6}}}
		if err := s.Ingest(ctx, &Batch{Checkpoints: all, Positions: []Position{{Topic: "consent.audit.checkpoints", Partition: 0, Next: 7}}}); err != nil {
			t.Fatal(err)
		}
		noNote := func(cs ...Checkpoint) []Checkpoint {
			for i := range cs {
				cs[i].Note = nil
			}
			return cs
		}
		var ff [32]byte
		for i := range ff {
			ff[i] = 0xff
		}
		// From the start, a page of two at a time.
		var got []Checkpoint
		size, root := int64(-1), ff
		for {
			page, err := s.CheckpointsOfBase(ctx, "consent.audit", 1, 0, size, root, 2)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) < 2 {
				break
			}
			size, root = page[len(page)-1].Size, page[len(page)-1].Root
		}
		if want := noNote(cp(0, 0, 0, 3), cp(0, 3, 1, 1), cp(0, 5, 2, 0), cp(0, 5, 9, 2), cp(0, 8, 1, 5)); !reflect.DeepEqual(got, want) {
			t.Errorf("checkpoints of base 0\n%+v\nwant\n%+v", got, want)
		}
		// After every checkpoint of size 5.
		page, err := s.CheckpointsOfBase(ctx, "consent.audit", 1, 0, 5, ff, 10)
		if err != nil || !reflect.DeepEqual(page, noNote(cp(0, 8, 1, 5))) {
			t.Errorf("after size 5: %+v, %v", page, err)
		}
		first, ok, err := s.CheckpointOfBaseAbove(ctx, "consent.audit", 1, math.MinInt64)
		if err != nil || !ok || !reflect.DeepEqual(first, noNote(cp(0, 0, 0, 3))[0]) {
			t.Errorf("first checkpoint: %+v, %v, %v", first, ok, err)
		}
		other, ok, err := s.CheckpointOfBaseAbove(ctx, "consent.audit", 1, 0)
		if err != nil || !ok || !reflect.DeepEqual(other, noNote(cp(7, 2, 4, 4))[0]) {
			t.Errorf("checkpoint of another base: %+v, %v, %v", other, ok, err)
		}
		if _, ok, err := s.CheckpointOfBaseAbove(ctx, "consent.audit", 1, 7); ok || err != nil {
			t.Errorf("a base above 7: %v, %v", ok, err)
		}
		if _, ok, err := s.CheckpointOfBaseAbove(ctx, "consent.audit", 3, math.MinInt64); ok || err != nil {
			t.Errorf("a partition without checkpoints: %v, %v", ok, err)
		}
	})
}

// TestSealerCheckpointQueriesUseTheKey: on SQLite the sealer's queries are
// searches of the table's key, not scans of a partition's checkpoints.
func TestSealerCheckpointQueriesUseTheKey(t *testing.T) {
	s, _ := backends[0].open(t)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{checkpointsOfBaseSQL, []any{"a", 0, 0, 5, 5, []byte{1}, 10}},
		{firstCheckpointSQL, []any{"a", 0}},
		{checkpointOfBaseAboveSQL, []any{"a", 0, 0}},
	} {
		rows, err := s.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q.sql, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "SEARCH") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("plan %q: want a search of the key in its order", p)
		}
		t.Logf("plan: %s", p)
	}
}
