package brokertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// TestProduceConsumeGroupAcrossRestart proves the embedded broker is a usable
// Kafka for kafka-go: acks=all produce, consumer-group fetch and commit, and
// committed offsets and data that survive a restart with a data directory.
func TestProduceConsumeGroupAcrossRestart(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2, DataDir: t.TempDir(), Topics: []string{"bt.in"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: "bt.in", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	write := func(keys ...string) {
		msgs := make([]kafka.Message, len(keys))
		for i, k := range keys {
			msgs[i] = kafka.Message{Key: []byte(k), Value: []byte("v-" + k)}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	write("a", "b", "c", "d")

	consume := func(n int) map[string]bool {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: "bt-group", Topic: "bt.in", MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset})
		defer r.Close()
		got := map[string]bool{}
		for len(got) < n {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("fetch: %v (got %d of %d)", err, len(got), n)
			}
			got[string(m.Key)] = true
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		return got
	}
	if got := consume(4); len(got) != 4 {
		t.Fatalf("first pass got %v", got)
	}

	b.Restart()
	write("e", "f")
	got := consume(2)
	for _, k := range []string{"a", "b", "c", "d"} {
		if got[k] {
			t.Errorf("record %q consumed again after restart: committed offsets were not kept", k)
		}
	}
	if !got["e"] || !got["f"] {
		t.Errorf("after restart got %v, want e and f", got)
	}
	all := b.ReadAll(t, "bt.in", 500*time.Millisecond, 10*time.Second)
	if len(all) != 6 {
		t.Errorf("log holds %d records after restart, want 6", len(all))
	}
}

// TestReadAllReturnsWhatWasWrittenHoweverShortTheQuiet: the records written
// before ReadAll is called come back even when the first fetch of a
// partition takes longer than quiet (a loaded machine). With quiet shorter
// than any fetch, ReadAll returned no record at all.
func TestReadAllReturnsWhatWasWrittenHoweverShortTheQuiet(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 3, Topics: []string{"ra.in"}})
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Balancer: &kafka.RoundRobin{}, BatchSize: 1, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	const n = 30
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: "ra.in", Value: []byte(fmt.Sprint(i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	got := b.ReadAll(t, "ra.in", time.Nanosecond, 20*time.Second)
	seen := map[string]bool{}
	parts := map[int]bool{}
	for _, m := range got {
		seen[string(m.Value)] = true
		parts[m.Partition] = true
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("ReadAll returned %d records (%d distinct), want the %d written", len(got), len(seen), n)
	}
	if len(parts) != 3 {
		t.Fatalf("records came from %d partitions, want 3", len(parts))
	}
}
