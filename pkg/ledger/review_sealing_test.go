package ledger

import (
	"context"
	"reflect"
	"testing"
)

// TestSealerCheckpointPartitions: CheckpointPartitions lists, in order and
// once each, the audit partitions that have checkpoints, those without
// records too, and only of the audit topic asked for.
func TestSealerCheckpointPartitions(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if got, err := s.CheckpointPartitions(ctx, "consent.audit"); err != nil || len(got) != 0 {
			t.Fatalf("empty ledger: %v, %v", got, err)
		}
		var cps []Checkpoint
		for i, c := range []struct {
			topic string
			p     int32
			size  int64
		}{{"consent.audit", 3, 1}, {"consent.audit", 0, 2}, {"consent.audit", 3, 2}, {"other.audit", 5, 1}, {"consent.audit", 12, 1}} {
			cps = append(cps, Checkpoint{AuditTopic: c.topic, Partition: c.p, Size: c.size, Root: [32]byte{byte(i)}, Note: []byte("n"),
				Coord: Coord{Topic: "consent.audit.checkpoints", Offset: int64(i), Time: t0}})
		}
		if err := s.Ingest(ctx, &Batch{Checkpoints: cps, Positions: []Position{{Topic: "consent.audit.checkpoints", Next: int64(len(cps))}}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.CheckpointPartitions(ctx, "consent.audit")
		if err != nil {
			t.Fatal(err)
		}
		if want := []int32{0, 3, 12}; !reflect.DeepEqual(got, want) {
			t.Fatalf("CheckpointPartitions = %v, want %v", got, want)
		}
	})
}
