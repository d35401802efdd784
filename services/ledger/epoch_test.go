package main

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/schemas"
)

// The tests of this file give the ledger a topic partition that is no
// longer the one its stored position was read from: the topic deleted and
// created again, or the ledger pointed at another cluster with the same
// topic names. Offsets start at 0 again, and what the stored position says
// about the partition is no longer true.

const dlq = "customer.events.dlq"

type epochFixture struct {
	t     *testing.T
	codec *avrocodec.Codec
	path  string
	store *ledger.Store
}

func newEpochFixture(t *testing.T) *epochFixture {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	store, err := ledger.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	return &epochFixture{t: t, codec: avrocodec.New(cat, nil), path: path, store: store}
}

// run starts a consumer of the default topics on addr.
func (f *epochFixture) run(addr string) (c *Consumer, stop func()) {
	cctx, cancel := context.WithCancel(context.Background())
	c = &Consumer{Brokers: []string{addr}, Topics: DefaultConfig().Topics(), Store: f.store, Decoder: &ledger.Decoder{Codec: f.codec, LeafHash: leafHash},
		BatchSize: 50, Linger: 5 * time.Millisecond, Refresh: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	return c, func() { cancel(); <-done }
}

// position is the stored next offset of topic/partition (0: none).
func (f *epochFixture) position(topic string, partition int32) int64 {
	f.t.Helper()
	pos, err := f.store.Positions(context.Background(), topic)
	if err != nil {
		f.t.Fatal(err)
	}
	return pos[partition]
}

func (f *epochFixture) count(query string) int {
	f.t.Helper()
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *epochFixture) exec(query string) {
	f.t.Helper()
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		f.t.Fatal(err)
	}
}

// recreate deletes topic and creates it again with one partition: its
// offsets start at 0 again.
func recreate(t *testing.T, b *brokertest.Broker, topic string) {
	t.Helper()
	conn, err := kafka.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.DeleteTopics(topic); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create topic again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHeld waits until c holds dlq/0, and fails the test if the stored
// position of dlq/0 moves past next first: the ledger went on reading a
// partition that is not the one it had read.
func (f *epochFixture) waitHeld(c *Consumer, next int64, what string) ledger.Hold {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, h := range c.Stats().Held {
			if h.Topic == dlq && h.Partition == 0 {
				return h
			}
		}
		if p := f.position(dlq, 0); p > next {
			f.t.Fatalf("%s: the ledger carried on without a word: position %d, was %d; dead letters in the ledger: %d",
				what, p, next, f.count("SELECT count(*) FROM dead_letters"))
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: the partition is not held after 60 s: %+v", what, c.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// othersGoOn produces n dead letters to another topic (created when
// missing) and waits until the ledger has them: a held partition stops
// only itself.
func (f *epochFixture) othersGoOn(b *brokertest.Broker, n int) {
	f.t.Helper()
	const other = "consent.changes.dlq"
	conn, err := kafka.Dial("tcp", b.Addr)
	if err != nil {
		f.t.Fatal(err)
	}
	err = conn.CreateTopics(kafka.TopicConfig{Topic: other, NumPartitions: 1, ReplicationFactor: 1})
	conn.Close()
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		f.t.Fatalf("create %s: %v", other, err)
	}
	want := f.position(other, 0) + int64(n)
	msgs := letters(0, n)
	for i := range msgs {
		msgs[i].Topic = other
	}
	produce(f.t, b.Addr, msgs)
	deadline := time.Now().Add(60 * time.Second)
	for f.position(other, 0) < want {
		if time.Now().After(deadline) {
			f.t.Fatalf("the other partitions are not read: %s/0 at %d, want %d", other, f.position(other, 0), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stillHeld restarts the consumer on addr and checks that the hold is still
// there and that nothing more of dlq/0 was stored.
func (f *epochFixture) stillHeld(b *brokertest.Broker, next int64, rows int) {
	f.t.Helper()
	c, stop := f.run(b.Addr)
	defer stop()
	f.waitHeld(c, next, "after a restart")
	f.othersGoOn(b, 2)
	if p := f.position(dlq, 0); p != next {
		f.t.Errorf("after a restart the position of the held partition is %d, want %d", p, next)
	}
	if n := f.count("SELECT count(*) FROM dead_letters WHERE topic = '" + dlq + "'"); n != rows {
		f.t.Errorf("after a restart %d dead letters of the held partition, want %d", n, rows)
	}
}

// TestEpochTopicRecreatedShorterWhileLedgerDown: the ledger read 10
// records; the topic is deleted and created again and holds 4. kafka-go's
// reader, asked for offset 10 of a partition that ends at 4, retries
// without a word (OffsetOutOfRange at its start is only logged); once the
// new topic holds 14, it reads offsets 10..13 of the new topic as if they
// followed the old ones. The ledger holds the partition instead: it ends
// before the position.
func TestEpochTopicRecreatedShorterWhileLedgerDown(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, broker.Addr, letters(0, 10))
	_, stop := f.run(broker.Addr)
	waitRows(t, f.store, 10, 60*time.Second)
	stop()

	recreate(t, broker, dlq)
	produce(t, broker.Addr, letters(100, 4))
	c, stop := f.run(broker.Addr)
	h := f.waitHeld(c, 10, "topic recreated with fewer records")
	if h.Next != 10 || !strings.Contains(h.Reason, "ends at offset 4, before the ledger's position 10") {
		t.Errorf("hold %+v, want one at 10 saying the partition ends at 4", h)
	}
	produce(t, broker.Addr, letters(104, 10)) // the new topic now reaches past the position
	f.othersGoOn(broker, 3)
	stop()
	if n := f.count("SELECT count(*) FROM dead_letters WHERE topic = '" + dlq + "'"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the old topic", n)
	}
	// The new topic now holds 14 records: the record at 9 is another one.
	f.stillHeld(broker, 10, 10)
}

// TestEpochLedgerPointedAtAnotherCluster: the ledger read 10 records of a
// cluster and is pointed at another one whose topic of the same name holds
// 15: it would read offsets 10..14 of the other cluster as if they
// followed. The record at offset 9 is another one: the partition is held.
func TestEpochLedgerPointedAtAnotherCluster(t *testing.T) {
	f := newEpochFixture(t)
	first := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, first.Addr, letters(0, 10))
	_, stop := f.run(first.Addr)
	waitRows(t, f.store, 10, 60*time.Second)
	stop()

	second := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, second.Addr, letters(500, 15))
	c, stop := f.run(second.Addr)
	h := f.waitHeld(c, 10, "another cluster")
	if !strings.Contains(h.Reason, "the record at offset 9 is not the one the ledger read") {
		t.Errorf("hold %+v, want one saying the record at 9 differs", h)
	}
	f.othersGoOn(second, 3)
	stop()
	if n := f.count("SELECT count(*) FROM dead_letters WHERE topic = '" + dlq + "'"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the first cluster", n)
	}
	f.stillHeld(second, 10, 10)

	// Pointed back at the first cluster, with the hold removed by the
	// operator, the ledger checks the partition again and reads on.
	f.exec("DELETE FROM ledger_holds")
	produce(t, first.Addr, letters(10, 5))
	c, stop = f.run(first.Addr)
	defer stop()
	waitRows(t, f.store, 15+3+2, 60*time.Second) // dlq 15, consent.changes.dlq 3+2 (othersGoOn)
	if len(c.Stats().Held) != 0 || f.position(dlq, 0) != 15 {
		t.Errorf("back on the first cluster: held %+v, position %d, want none and 15", c.Stats().Held, f.position(dlq, 0))
	}
}

// TestEpochTopicRecreatedWhileLedgerRuns: the topic is deleted and created
// again while the ledger reads it, and holds 4 records: the reader finds
// its offset past the partition's end, or reconnects; the partition is
// checked again and held. Records produced afterwards are not read.
func TestEpochTopicRecreatedWhileLedgerRuns(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, broker.Addr, letters(0, 10))
	c, stop := f.run(broker.Addr)
	waitRows(t, f.store, 10, 60*time.Second)

	recreate(t, broker, dlq)
	produce(t, broker.Addr, letters(100, 4))
	h := f.waitHeld(c, 10, "topic recreated while the ledger runs")
	if !strings.Contains(h.Reason, "ends at offset 4, before the ledger's position 10") {
		t.Errorf("hold %+v, want one saying the partition ends at 4", h)
	}
	produce(t, broker.Addr, letters(104, 11))
	f.othersGoOn(broker, 3)
	stop()
	if n := f.count("SELECT count(*) FROM dead_letters WHERE topic = '" + dlq + "'"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the old topic", n)
	}
	f.stillHeld(broker, 10, 10)
}

// TestEpochPositionRemovedReplayDropsNothing: the ledger read 10 records;
// the topic is recreated with 15 and the position of the partition is
// removed (an operator "starting over"). Reading from 0 again, the rows of
// offsets 0..9 are already there: ON CONFLICT DO NOTHING would drop the
// new topic's records at those offsets without a word. The store refuses
// the batch and the consumer holds the partition.
func TestEpochPositionRemovedReplayDropsNothing(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, broker.Addr, letters(0, 10))
	_, stop := f.run(broker.Addr)
	waitRows(t, f.store, 10, 60*time.Second)
	stop()

	recreate(t, broker, dlq)
	produce(t, broker.Addr, letters(100, 15))
	f.exec("DELETE FROM ledger_positions WHERE topic = '" + dlq + "'")
	c, stop := f.run(broker.Addr)
	h := f.waitHeld(c, 0, "position removed")
	if !strings.Contains(h.Reason, "rows are stored at or past the stored position 0") {
		t.Errorf("hold %+v, want one saying rows are stored past the position", h)
	}
	f.othersGoOn(broker, 3)
	stop()
	if n := f.count("SELECT count(*) FROM dead_letters WHERE topic = '" + dlq + "'"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the old topic", n)
	}
	f.stillHeld(broker, 0, 10)
}

// TestEpochTopicRecreatedLongerWhileLedgerRuns: the topic is deleted and
// created again while the ledger reads it, and holds 15 records at once:
// past the position, so nothing is out of range. The reader reconnects
// (the partition was unknown for a moment); the record at offset 9 is
// checked again and is another one: the partition is held.
func TestEpochTopicRecreatedLongerWhileLedgerRuns(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, broker.Addr, letters(0, 10))
	c, stop := f.run(broker.Addr)
	defer stop()
	waitRows(t, f.store, 10, 60*time.Second)
	recreate(t, broker, dlq)
	produce(t, broker.Addr, letters(100, 15))
	h := f.waitHeld(c, 10, "topic recreated with more records while the ledger runs")
	if !strings.Contains(h.Reason, "the record at offset 9 is not the one the ledger read") {
		t.Errorf("hold %+v, want one saying the record at 9 differs", h)
	}
	f.othersGoOn(broker, 3)
	if n := f.count("SELECT count(*) FROM dead_letters WHERE topic = '" + dlq + "'"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the old topic", n)
	}
}
