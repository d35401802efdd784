package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
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
		var pe *PartitionError
		if !errors.As(err, &pe) || pe.Topic != "dlq" || pe.Partition != 0 {
			t.Errorf("refused with %v, want a *PartitionError of dlq/0", err)
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

// TestPositionsKeepTheHashOfTheirLastRecord: Resume returns the hash of
// the record before each position, moved with the position and never back;
// a position written without one has none.
func TestPositionsKeepTheHashOfTheirLastRecord(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
		in := func(ps ...Position) {
			t.Helper()
			if err := s.Ingest(ctx, &Batch{Positions: ps}); err != nil {
				t.Fatal(err)
			}
		}
		in(Position{Topic: "a", Partition: 0, Next: 10, Last: h(1)}, Position{Topic: "a", Partition: 1, Next: 3})
		in(Position{Topic: "a", Partition: 0, Next: 7, Last: h(2)}) // a replay: neither moves back
		in(Position{Topic: "a", Partition: 1, Next: 5, Last: h(3)})
		got, err := s.Resume(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if p := got[0]; p.Next != 10 || !bytes.Equal(p.Last, h(1)) {
			t.Errorf("a/0 = %d %x, want 10 %x", p.Next, p.Last, h(1))
		}
		if p := got[1]; p.Next != 5 || !bytes.Equal(p.Last, h(3)) {
			t.Errorf("a/1 = %d %x, want 5 %x", p.Next, p.Last, h(3))
		}
		in(Position{Topic: "b", Partition: 0, Next: 1})
		if got, _ := s.Resume(ctx, "b"); got[0].Next != 1 || got[0].Last != nil {
			t.Errorf("b/0 = %+v, want next 1 without a hash", got[0])
		}
		if err := s.Ingest(ctx, &Batch{Positions: []Position{{Topic: "a", Partition: 0, Next: 11, Last: []byte{1}}}}); err == nil {
			t.Error("a hash of one byte was accepted")
		}
	})
}

// TestHoldsStayAndRefuseIngest: a held partition is listed with its first
// reason, across a reopen, and Ingest writes nothing of a batch with a
// position of it.
func TestHoldsStayAndRefuseIngest(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, dsn := be.open(t)
			ctx := context.Background()
			if err := s.Ingest(ctx, letterBatch("dlq", 0, 3, "r")); err != nil {
				t.Fatal(err)
			}
			at := time.UnixMilli(1_760_000_000_000).UTC()
			if err := s.Hold(ctx, Hold{Topic: "dlq", Partition: 0, Next: 3, Reason: "first", At: at}); err != nil {
				t.Fatal(err)
			}
			if err := s.Hold(ctx, Hold{Topic: "dlq", Partition: 0, Next: 3, Reason: "second"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Hold(ctx, Hold{Topic: "", Partition: 0, Reason: "x"}); err == nil {
				t.Error("a hold without a topic was accepted")
			}
			s.Close()
			s = openStore(t, dsn)
			hs, err := s.Holds(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) != 1 || hs[0] != (Hold{Topic: "dlq", Partition: 0, Next: 3, Reason: "first", At: at}) {
				t.Errorf("holds %+v, want the first hold of dlq/0", hs)
			}
			before := dump(t, s)
			err = s.Ingest(ctx, letterBatch("dlq", 3, 2, "r"))
			var pe *PartitionError
			if !errors.As(err, &pe) || pe.Topic != "dlq" {
				t.Errorf("ingest into a held partition: %v, want a *PartitionError", err)
			}
			if dump(t, s) != before {
				t.Error("the refused batch left rows or positions behind")
			}
			if err := s.Ingest(ctx, letterBatch("other", 0, 2, "r")); err != nil {
				t.Errorf("another partition was refused: %v", err)
			}
		})
	}
}

// TestRecordHash: the hash changes with key, value, timestamp and headers
// (a null and an empty field differ), not with the coordinates.
func TestRecordHash(t *testing.T) {
	at := time.UnixMilli(1_750_000_000_123)
	base := kafka.Message{Topic: "t", Partition: 1, Offset: 5, Key: []byte("k"), Value: []byte("v"), Time: at,
		Headers: []kafka.Header{{Key: "h", Value: []byte("1")}}}
	h0 := RecordHash(base)
	if len(h0) != 32 {
		t.Fatalf("hash of %d bytes", len(h0))
	}
	moved := base
	moved.Topic, moved.Partition, moved.Offset = "u", 2, 9
	if !bytes.Equal(RecordHash(moved), h0) {
		t.Error("the hash depends on the coordinates")
	}
	variants := map[string]func(m *kafka.Message){
		"key":          func(m *kafka.Message) { m.Key = []byte("K") },
		"null key":     func(m *kafka.Message) { m.Key = nil },
		"empty key":    func(m *kafka.Message) { m.Key = []byte{} },
		"value":        func(m *kafka.Message) { m.Value = []byte("w") },
		"key to value": func(m *kafka.Message) { m.Key, m.Value = []byte("kv"), []byte{} },
		"time":         func(m *kafka.Message) { m.Time = at.Add(time.Millisecond) },
		"header value": func(m *kafka.Message) { m.Headers = []kafka.Header{{Key: "h", Value: []byte("2")}} },
		"no header":    func(m *kafka.Message) { m.Headers = nil },
		"header key":   func(m *kafka.Message) { m.Headers = []kafka.Header{{Key: "h1", Value: nil}} },
	}
	seen := map[string]string{string(h0): "base"}
	for name, f := range variants {
		m := base
		f(&m)
		h := string(RecordHash(m))
		if other, ok := seen[h]; ok {
			t.Errorf("%s has the hash of %s", name, other)
		}
		seen[h] = name
	}
	emptyKey, nullKey := base, base
	emptyKey.Key, nullKey.Key = []byte{}, nil
	if bytes.Equal(RecordHash(emptyKey), RecordHash(nullKey)) {
		t.Error("a null key and an empty key have one hash")
	}
}
