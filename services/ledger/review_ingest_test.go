package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/ledger"
)

// holdGate is the real store, with the commit of the dead-letter
// partition's records past offset 10 kept waiting until that partition is
// held: the order in which a reader that finds its partition recreated
// stores the hold while the records it read before are still on their way
// to the writer.
type holdGate struct {
	*ledger.Store
	heldOnce, waitOnce sync.Once
	held, waiting      chan struct{}
}

func (g *holdGate) Hold(ctx context.Context, h ledger.Hold) error {
	err := g.Store.Hold(ctx, h)
	if h.Topic == dlq {
		g.heldOnce.Do(func() { close(g.held) })
	}
	return err
}

func (g *holdGate) Ingest(ctx context.Context, b *ledger.Batch) error {
	for _, p := range b.Positions {
		if p.Topic == dlq && p.Next > 10 {
			g.waitOnce.Do(func() { close(g.waiting) })
			select {
			case <-g.held:
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(60 * time.Second):
			}
		}
	}
	return g.Store.Ingest(ctx, b)
}

// TestReviewIngestHoldKeepsTheRecordsReadBeforeIt: the ledger read 10
// dead letters and reads 5 more (offsets 10..14) from the same connection;
// before their batch commits, the topic is deleted and created again with
// 4 records. The reader finds its offset past the partition's end and
// holds the partition at 15, the offset after the last record it read.
// The 5 records were read from the partition the ledger had checked, and
// are gone from the topic now: the ledger is their only record. The hold
// must not drop them (the store refused their batch: "the partition is
// held"), and the records of the new topic stay out.
func TestReviewIngestHoldKeepsTheRecordsReadBeforeIt(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, broker.Addr, letters(0, 10))
	g := &holdGate{Store: f.store, held: make(chan struct{}), waiting: make(chan struct{})}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{Brokers: []string{broker.Addr}, Topics: DefaultConfig().Topics(), Store: g, Decoder: &ledger.Decoder{Codec: f.codec, LeafHash: leafHash},
		BatchSize: 50, Linger: 5 * time.Millisecond, Refresh: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	defer func() { cancel(); <-done }()
	waitRows(t, f.store, 10, 60*time.Second)

	produce(t, broker.Addr, letters(10, 5))
	select {
	case <-g.waiting:
	case <-time.After(60 * time.Second):
		t.Fatal("the records 10..14 never reached the writer")
	}
	recreate(t, broker, dlq)
	produce(t, broker.Addr, letters(100, 4))
	h := f.waitHeld(c, 15, "topic recreated while records read before are in flight")
	f.othersGoOn(broker, 3)
	if n := f.count("SELECT count(*) FROM dead_letters WHERE topic = '" + dlq + "'"); n != 15 || f.position(dlq, 0) != 15 || h.Next != 15 {
		t.Errorf("%d dead letters of the partition in the ledger, position %d, held at %d; want the 15 read from the old topic, 15, 15 (hold: %s)",
			n, f.position(dlq, 0), h.Next, h.Reason)
	}
}

// TestReviewIngestConsumerGoesOnPastARecordTheStoreRefused: one audit
// record the database refuses for good (here its processed_at is
// 0001-01-01, which Ingest took for "no processed_at") stops the consumer
// on its batch for ever: no record of any topic after it reaches the
// ledger, and retention removes them from the brokers meanwhile.
func TestReviewIngestConsumerGoesOnPastARecordTheStoreRefused(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	a := map[string]any{
		"event_id": map[string]any{"string": "e-1"}, "subject_id": map[string]any{"string": "subject-1"},
		"outcome": "DECIDED", "dead_letter_reason": nil, "event_schema": map[string]any{"string": "consentgate.events.PageView"},
		"policy_version": "p1", "source_topic": "customer.events", "source_partition": int32(0), "source_offset": int64(0),
		"processed_at": time.UnixMilli(-62135596800000).UTC(), "decisions": []any{}}
	b, err := f.codec.EncodeSingle(audit.Schema, a)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, broker.Addr, []kafka.Message{{Topic: "consent.audit", Value: b}})
	_, stop := f.run(broker.Addr)
	defer stop()
	f.othersGoOn(broker, 3)
	if p := f.position("consent.audit", 0); p != 1 {
		t.Errorf("position of consent.audit/0 is %d, want 1", p)
	}
}
