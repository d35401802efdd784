package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/decision"
)

// TestStatsListHolds: Stats lists every held partition with its position,
// reason and time, and an empty list (not null) when none is held.
func TestStatsListHolds(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Holds == nil || len(st.Holds) != 0 {
			t.Fatalf("holds of an empty ledger %#v, want an empty list", st.Holds)
		}
		at := time.UnixMilli(1_760_000_000_123).UTC()
		for _, h := range []Hold{
			{Topic: "dlq", Partition: 1, Next: 7, Reason: "the partition ends at offset 4, before the ledger's position 7", At: at},
			{Topic: "consent.audit", Partition: 0, Next: 3, Reason: "the record at offset 2 is not the one the ledger read there", At: at.Add(time.Second)},
		} {
			if err := s.Hold(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		st, err = s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []HeldPartition{
			{Topic: "consent.audit", Partition: 0, Next: 3, Reason: "the record at offset 2 is not the one the ledger read there", Since: at.Add(time.Second)},
			{Topic: "dlq", Partition: 1, Next: 7, Reason: "the partition ends at offset 4, before the ledger's position 7", Since: at},
		}
		if len(st.Holds) != len(want) || st.Holds[0] != want[0] || st.Holds[1] != want[1] {
			t.Errorf("holds %+v, want %+v", st.Holds, want)
		}
	})
}

// TestReleaseDeletesTheHold: Release refuses without who and why, says
// ErrNotHeld of a partition not held, deletes only the hold asked for and
// returns it; the partition's rows and position stay, and Ingest takes
// the partition's batches again.
func TestReleaseDeletesTheHold(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, dsn := be.open(t)
			ctx := context.Background()
			if err := s.Ingest(ctx, letterBatch("dlq", 0, 3, "r")); err != nil {
				t.Fatal(err)
			}
			at := time.UnixMilli(1_760_000_000_000).UTC()
			held := Hold{Topic: "dlq", Partition: 0, Next: 3, Reason: "the partition ends at offset 1, before the ledger's position 3", At: at}
			other := Hold{Topic: "dlq", Partition: 1, Next: 5, Reason: "other", At: at}
			for _, h := range []Hold{held, other} {
				if err := s.Hold(ctx, h); err != nil {
					t.Fatal(err)
				}
			}
			before := dump(t, s)
			for _, r := range []HoldRelease{
				{Topic: "dlq", Partition: 0, By: "ops", Reason: ""},
				{Topic: "dlq", Partition: 0, By: "ops", Reason: " \t"},
				{Topic: "dlq", Partition: 0, By: "", Reason: "checked"},
				{Topic: "", Partition: 0, By: "ops", Reason: "checked"},
				{Topic: "dlq", Partition: -1, By: "ops", Reason: "checked"},
			} {
				if _, err := s.Release(ctx, r); err == nil {
					t.Errorf("release %+v was accepted", r)
				}
			}
			if _, err := s.Release(ctx, HoldRelease{Topic: "dlq", Partition: 2, By: "ops", Reason: "checked"}); !errors.Is(err, ErrNotHeld) {
				t.Errorf("release of a partition not held: %v, want ErrNotHeld", err)
			}
			if dump(t, s) != before {
				t.Fatal("a refused release changed the ledger")
			}
			got, err := s.Release(ctx, HoldRelease{Topic: "dlq", Partition: 0, By: "ops", Reason: "pointed back at the right cluster"})
			if err != nil {
				t.Fatal(err)
			}
			if got != held {
				t.Errorf("released %+v, want %+v", got, held)
			}
			// Reopened: the release is stored, the other hold stays.
			s.Close()
			s = openStore(t, dsn)
			hs, err := s.Holds(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) != 1 || hs[0] != other {
				t.Errorf("holds after the release %+v, want only %+v", hs, other)
			}
			rs, err := s.HoldReleases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || rs[0].Hold != held || rs[0].By != "ops" || rs[0].Reason != "pointed back at the right cluster" || rs[0].At.IsZero() {
				t.Errorf("releases kept %+v, want the one release of %+v", rs, held)
			}
			if pos, _ := s.Positions(ctx, "dlq"); pos[0] != 3 {
				t.Errorf("position after the release %d, want 3 (unchanged)", pos[0])
			}
			if _, err := s.Release(ctx, HoldRelease{Topic: "dlq", Partition: 0, By: "ops", Reason: "again"}); !errors.Is(err, ErrNotHeld) {
				t.Errorf("a second release: %v, want ErrNotHeld", err)
			}
			if err := s.Ingest(ctx, letterBatch("dlq", 3, 2, "r")); err != nil {
				t.Errorf("the released partition's next batch was refused: %v", err)
			}
			if err := s.Ingest(ctx, &Batch{Positions: []Position{{Topic: "dlq", Partition: 1, Next: 6}}}); err == nil {
				t.Error("the partition still held was written")
			}
		})
	}
}

// TestAuditHoldsAreThoseOfTheAuditTopic: the holds that make completeness
// unknowable are those of the named audit topic and of any topic the
// ledger has audit records, audit-topic undecodable records or
// checkpoints of; not those of the other topics.
func TestAuditHoldsAreThoseOfTheAuditTopic(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		b := &Batch{
			Audits: []AuditEntry{{Coord: Coord{Topic: "audit.b", Partition: 0, Offset: 0, Time: t0},
				Record: auditRecord("s1", "e1", "customer.events", 0, 0, t0, decision.Passed)}},
			Undecodable: []Undecodable{
				{Coord: Coord{Topic: "audit.c", Partition: 0, Offset: 0, Time: t0}, Error: "x", LeafHash: make([]byte, 32)},
				{Coord: Coord{Topic: "changes.x", Partition: 0, Offset: 0, Time: t0}, Error: "x"},
			},
			Checkpoints: []Checkpoint{{Coord: Coord{Topic: "cps", Partition: 0, Offset: 0, Time: t0}, AuditTopic: "audit.d", Partition: 0, Size: 1, Note: []byte("n")}},
			Positions: []Position{{Topic: "audit.b", Partition: 0, Next: 1}, {Topic: "audit.c", Partition: 0, Next: 1},
				{Topic: "changes.x", Partition: 0, Next: 1}, {Topic: "cps", Partition: 0, Next: 1}},
		}
		if err := s.Ingest(ctx, b); err != nil {
			t.Fatal(err)
		}
		for _, topic := range []string{"audit.a", "audit.b", "audit.c", "audit.d", "changes.x", "cps", "dlq"} {
			if err := s.Hold(ctx, Hold{Topic: topic, Partition: 0, Next: 1, Reason: "r", At: t0}); err != nil {
				t.Fatal(err)
			}
		}
		hs, err := s.AuditHolds(ctx, "audit.a")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hs {
			got = append(got, h.Topic)
		}
		if strings.Join(got, " ") != "audit.a audit.b audit.c audit.d" {
			t.Errorf("audit holds of %v, want audit.a audit.b audit.c audit.d", got)
		}
	})
}
