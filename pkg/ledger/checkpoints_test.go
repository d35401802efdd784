package ledger

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/decision"
)

// TestCheckpointsAndLeaves checks that checkpoints come back as ingested
// (two roots for one size both kept, a re-ingest adding nothing) and that
// LeafHashes streams the leaf hashes of a range in offset order.
func TestCheckpointsAndLeaves(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f := newFixture()
		for i := 0; i < 5; i++ {
			f.audit(auditRecord("a", "e", "customer.events", 0, int64(i), t0, decision.Passed))
			f.b.Audits[i].LeafHash = [32]byte{byte(i + 1), 0xee}
		}
		cp := func(size int64, root byte, off int64) Checkpoint {
			return Checkpoint{AuditTopic: "consent.audit", Partition: 0, Size: size, Root: [32]byte{root}, Note: []byte("note"),
				PublishedAt: t0.Add(time.Duration(size) * time.Second),
				Coord:       Coord{Topic: "consent.audit.checkpoints", Partition: 0, Offset: off, Time: t0}}
		}
		f.b.Checkpoints = []Checkpoint{cp(5, 2, 1), cp(3, 1, 0), cp(5, 9, 2)}
		f.ingest(t, s)
		f.ingest(t, s)
		got, err := s.Checkpoints(ctx, "consent.audit", 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []Checkpoint{cp(3, 1, 0), cp(5, 2, 1), cp(5, 9, 2)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("checkpoints\n%+v\nwant\n%+v", got, want)
		}
		var offs []int64
		if err := s.LeafHashes(ctx, "consent.audit", 0, 1, 4, func(off int64, leaf [32]byte) error {
			if leaf[0] != byte(off+1) || leaf[1] != 0xee {
				t.Errorf("offset %d: leaf %x", off, leaf[:2])
			}
			offs = append(offs, off)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(offs, []int64{1, 2, 3}) {
			t.Errorf("offsets %v, want [1 2 3]", offs)
		}
	})
}
