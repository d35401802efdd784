package ledger

import (
	"context"
	"fmt"
	"testing"
)

// letterBatch is n dead letters of topic/0 from offset from on, with reason,
// and the position after them.
func letterBatch(topic string, from, n int64, reason string) *Batch {
	b := &Batch{}
	for o := from; o < from+n; o++ {
		b.DeadLetters = append(b.DeadLetters, DeadLetter{Coord: Coord{Topic: topic, Partition: 0, Offset: o, Time: t0},
			Reason: reason, Error: "framing", SourceTopic: "customer.events", SourceOffset: o, EventID: fmt.Sprintf("e%d", o)})
	}
	b.Positions = []Position{{Topic: topic, Partition: 0, Next: from + n}}
	return b
}

// TestIngestRefusesRowsPastThePosition: rows are stored at offsets 0..9 with
// position 10; the position is removed (or the topic recreated and read
// from 0 again). A batch of other records at offsets 0..14 would lose its
// first 10 to ON CONFLICT DO NOTHING without a word: Ingest refuses it and
// stores none of it.
func TestIngestRefusesRowsPastThePosition(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Ingest(ctx, letterBatch("dlq", 0, 10, "old")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.ExecContext(ctx, "DELETE FROM ledger_positions"); err != nil {
			t.Fatal(err)
		}
		before := dump(t, s)
		err := s.Ingest(ctx, letterBatch("dlq", 0, 15, "new"))
		if err == nil {
			t.Fatal("a batch whose offsets collide with rows past the stored position was accepted (10 of its records dropped by ON CONFLICT DO NOTHING)")
		}
		if after := dump(t, s); after != before {
			t.Error("the refused batch left rows or positions behind")
		}
		// A replay of records the position covers is still a no-op.
		if err := s.Ingest(ctx, letterBatch("dlq2", 0, 10, "x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Ingest(ctx, letterBatch("dlq2", 0, 10, "x")); err != nil {
			t.Errorf("a replay was refused: %v", err)
		}
	})
}
