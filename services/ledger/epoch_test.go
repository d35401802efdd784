package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
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

// waitMovedPast waits until the stored position of dlq/0 is past next or
// the deadline passes, and fails the test if it moved: the ledger went on
// reading a partition that is not the one it had read.
func (f *epochFixture) waitMovedPast(next int64, within time.Duration, what string) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if p := f.position(dlq, 0); p > next {
			f.t.Fatalf("%s: the ledger carried on without a word: position %d, was %d; dead letters in the ledger: %d",
				what, p, next, f.count("SELECT count(*) FROM dead_letters"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEpochTopicRecreatedShorterWhileLedgerDown: the ledger read 10
// records; the topic is deleted and created again and holds 4. kafka-go's
// reader, asked for offset 10 of a partition that ends at 4, retries
// without a word (OffsetOutOfRange at its start is only logged); once the
// new topic holds 14, it reads offsets 10..13 of the new topic as if they
// followed the old ones.
func TestEpochTopicRecreatedShorterWhileLedgerDown(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, broker.Addr, letters(0, 10))
	_, stop := f.run(broker.Addr)
	waitRows(t, f.store, 10, 60*time.Second)
	stop()

	recreate(t, broker, dlq)
	produce(t, broker.Addr, letters(100, 4))
	_, stop = f.run(broker.Addr)
	defer stop()
	produce(t, broker.Addr, letters(104, 10))
	f.waitMovedPast(10, 15*time.Second, "topic recreated with fewer records")
	if n := f.count("SELECT count(*) FROM dead_letters"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the old topic", n)
	}
}

// TestEpochLedgerPointedAtAnotherCluster: the ledger read 10 records of a
// cluster and is pointed at another one whose topic of the same name holds
// 15: it reads offsets 10..14 of the other cluster as if they followed.
func TestEpochLedgerPointedAtAnotherCluster(t *testing.T) {
	f := newEpochFixture(t)
	first := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, first.Addr, letters(0, 10))
	_, stop := f.run(first.Addr)
	waitRows(t, f.store, 10, 60*time.Second)
	stop()

	second := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, second.Addr, letters(500, 15))
	_, stop = f.run(second.Addr)
	defer stop()
	f.waitMovedPast(10, 15*time.Second, "another cluster")
	if n := f.count("SELECT count(*) FROM dead_letters"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the first cluster", n)
	}
}

// TestEpochTopicRecreatedWhileLedgerRuns: the topic is deleted and created
// again while the ledger reads it, then holds 4 records and later 15.
func TestEpochTopicRecreatedWhileLedgerRuns(t *testing.T) {
	f := newEpochFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produce(t, broker.Addr, letters(0, 10))
	_, stop := f.run(broker.Addr)
	defer stop()
	waitRows(t, f.store, 10, 60*time.Second)

	recreate(t, broker, dlq)
	produce(t, broker.Addr, letters(100, 4))
	produce(t, broker.Addr, letters(104, 11))
	f.waitMovedPast(10, 15*time.Second, "topic recreated while the ledger runs")
	if n := f.count("SELECT count(*) FROM dead_letters"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the old topic", n)
	}
}

// TestEpochPositionRemovedReplayDropsNothing: the ledger read 10 records;
// the topic is recreated with 15 and the position of the partition is
// removed (an operator "starting over"). Reading from 0 again, the rows of
// offsets 0..9 are already there: ON CONFLICT DO NOTHING would drop the
// new topic's records at those offsets without a word.
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
	_, stop = f.run(broker.Addr)
	defer stop()
	f.waitMovedPast(0, 15*time.Second, "position removed")
	if n := f.count("SELECT count(*) FROM dead_letters"); n != 10 {
		t.Errorf("%d dead letters in the ledger, want the 10 of the old topic", n)
	}
}
