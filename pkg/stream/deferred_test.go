package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// seqSink writes through the real writer and numbers the records it saw
// acknowledged, in order.
type seqSink struct {
	w    stream.Writer
	mu   sync.Mutex
	seq  int
	acks map[string]int // topic + value -> sequence number
}

func (s *seqSink) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := s.w.WriteMessages(ctx, msgs...)
	werrs, _ := err.(kafka.WriteErrors)
	if err != nil && len(werrs) != len(msgs) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range msgs {
		if werrs == nil || werrs[i] == nil {
			s.seq++
			s.acks[m.Topic+" "+string(m.Value)] = s.seq
		}
	}
	return err
}

func (s *seqSink) BatchLimits() (int, int64) { l, b, _ := stream.BatchLimitsOf(s.w); return l, b }

// TestRunnerDeferredRecordsGoLastAndAreAmended: records marked Deferred
// (audit records, tied to their input by the event id only) are written
// after every other record of their batch is acknowledged; the deferred
// record of the one input whose output the broker refuses (a topic limit
// of 4 KiB) is given to Amend with that topic, and what Amend returns is
// written in its place; the other deferred records are written as they
// are, Amend is not called for them.
func TestRunnerDeferredRecordsGoLastAndAreAmended(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"df.in", "df.audit", "df.in.dlq"}})
	b.CreateTopicsWithConfig(t, 1, map[string]string{"max.message.bytes": "4096"}, "df.out")
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	w := stream.NewWriter(cfg)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const n, big = 40, 17
	in := make([]kafka.Message, n)
	for i := range in {
		in[i] = kafka.Message{Topic: "df.in", Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(fmt.Sprintf("v%03d", i))}
	}
	in[big].Value = append([]byte("v017-"), bytes.Repeat([]byte("x"), 6<<10)...)
	if err := stream.WriteAll(ctx, w, in, nil); err != nil {
		t.Fatal(err)
	}
	sink := &seqSink{w: w, acks: map[string]int{}}
	var mu sync.Mutex
	amended := map[string][]string{} // audit value -> topics
	src := stream.NewReader(cfg, stream.ReaderConfig{Topics: []string{"df.in"}, GroupID: "df", MaxWait: 50 * time.Millisecond,
		SessionTimeout: 6 * time.Second, FromBeginning: true})
	runner := &stream.Runner{
		Source: src, Sink: sink, BatchSize: 10, Linger: 5 * time.Millisecond, DrainTimeout: 2 * time.Second,
		MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Deferred: func(m kafka.Message) bool { return m.Topic == "df.audit" },
		Amend: func(m kafka.Message, u stream.Undelivered) (kafka.Message, error) {
			mu.Lock()
			amended[string(m.Value)] = u.Topics
			mu.Unlock()
			m.Value = []byte("amended " + string(m.Value) + " " + strings.Join(u.Topics, ",") + " " + u.Reason)
			return m, nil
		},
		Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
			var out []kafka.Message
			for _, m := range batch {
				id := []byte(fmt.Sprintf("e-%d", m.Offset))
				// The audit record first, as a processor may order them.
				out = append(out, kafka.Message{Topic: "df.audit", Key: m.Key, Value: []byte(fmt.Sprintf("audit %d", m.Offset)),
					Headers: []kafka.Header{{Key: "consentgate.event_id", Value: id}}},
					kafka.Message{Topic: "df.out", Key: m.Key, Value: m.Value, Headers: []kafka.Header{{Key: "consentgate.event_id", Value: id},
						{Key: "consentgate.source.topic", Value: []byte(m.Topic)}, {Key: "consentgate.source.partition", Value: []byte(strconv.Itoa(m.Partition))},
						{Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(m.Offset, 10))}}})
			}
			return out, nil
		},
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for runner.Records.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}
	src.Close()
	if got := runner.Records.Load(); got != n {
		t.Fatalf("%d of %d inputs committed", got, n)
	}
	if len(amended) != 1 || !slices.Equal(amended[fmt.Sprintf("audit %d", big)], []string{"df.out"}) {
		t.Errorf("Amend was called for %v, want only audit %d with [df.out]", amended, big)
	}
	for i := range n {
		audit := fmt.Sprintf("audit %d", i)
		if i == big {
			audit = fmt.Sprintf("amended audit %d df.out %s", i, stream.ReasonTooLarge)
		}
		at, ok := sink.acks["df.audit "+audit]
		if !ok {
			t.Errorf("input %d: %q was not written", i, audit)
			continue
		}
		if i == big {
			continue
		}
		if out := sink.acks["df.out "+string(in[i].Value)]; out == 0 || out > at {
			t.Errorf("input %d: its deferred record was acknowledged (#%d) before its output (#%d)", i, at, out)
		}
	}
}

// TestRunnerStopsWhenADeferredRecordIsRefused: a deferred record (an audit
// record: what became of its input) that can never be written stops the
// runner, its batch uncommitted, instead of being replaced by a dead letter
// of the input: the outputs of that input are already written, so a dead
// letter would leave a committed offset whose deferred record says nothing
// (the enforcer's contract: exactly one audit record per input offset). The
// deferred topic refuses records above 4 KiB; input 5's deferred record is
// larger (a misconfigured audit topic, once ids are bounded). Run returns
// the error by itself, offsets 0 to 4 are committed and 5 is not, and
// nothing is dead-lettered. Before, the runner dead-lettered input 5 and
// committed its offset without a deferred record. Pipelined (depth 0 and
// 2: a later batch's outputs are written while the refused deferred record
// is in flight) the same: nothing after the refused batch is committed or
// has a deferred record, and Run returns by itself.
func TestRunnerStopsWhenADeferredRecordIsRefused(t *testing.T) {
	for _, depth := range []int{-1, 0, 2} {
		t.Run("depth="+strconv.Itoa(depth), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"dr.in", "dr.out", "dr.in.dlq"}})
			b.CreateTopicsWithConfig(t, 1, map[string]string{"max.message.bytes": "4096"}, "dr.audit")
			cfg := stream.DefaultConfig()
			cfg.Brokers = []string{b.Addr}
			w := stream.NewWriter(cfg)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			in := make([]kafka.Message, 10)
			for i := range in {
				in[i] = kafka.Message{Topic: "dr.in", Value: []byte(fmt.Sprintf("v%04d", i))}
			}
			if err := stream.WriteAll(ctx, w, in, nil); err != nil {
				t.Fatal(err)
			}
			rc := stream.ReaderConfig{Topics: []string{"dr.in"}, GroupID: "dr-group-" + strconv.Itoa(depth), MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
			sink := &dlqSink{w: w, acked: map[string]bool{}}
			src := &dlqSource{Reader: stream.NewReader(cfg, rc), sink: sink, committed: map[string]bool{}}
			defer src.Close()
			var amended atomic.Int64
			runner := &stream.Runner{
				Source: src, Sink: sink, BatchSize: 1, Linger: time.Millisecond, DrainTimeout: time.Second, Depth: depth,
				Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
				Deferred: func(m kafka.Message) bool { return m.Topic == "dr.audit" },
				Amend: func(m kafka.Message, _ stream.Undelivered) (kafka.Message, error) {
					amended.Add(1)
					return m, nil
				},
				Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
					m := batch[0]
					src := []kafka.Header{
						{Key: "consentgate.source.topic", Value: []byte(m.Topic)},
						{Key: "consentgate.source.partition", Value: []byte(strconv.Itoa(m.Partition))},
						{Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
					}
					audit := kafka.Message{Topic: "dr.audit", Value: []byte("audit " + string(m.Value)), Headers: src}
					if m.Offset == 5 {
						audit.Value = bytes.Repeat([]byte("a"), 6<<10)
					}
					return []kafka.Message{{Topic: "dr.out", Value: m.Value, Headers: src}, audit}, nil
				},
			}
			done := make(chan error, 1)
			go func() { done <- runner.Run(ctx) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("runner still running 30s after a deferred record was refused: want it stopped")
			}
			if err == nil || !strings.Contains(err.Error(), "uncommitted") || !strings.Contains(err.Error(), "deferred") {
				t.Fatalf("Run returned %v, want the refused deferred record, offsets uncommitted", err)
			}
			if n := runner.DeadLettered.Load(); n != 0 {
				t.Errorf("the runner dead-lettered %d inputs, want none", n)
			}
			if amended.Load() != 0 {
				t.Errorf("Amend called %d times, want 0 (no output was refused)", amended.Load())
			}
			src.mu.Lock()
			committed := len(src.committed)
			for c := range src.committed {
				if c >= "0/5" {
					t.Errorf("offset %s committed; want nothing from the input whose deferred record was refused on", c)
				}
			}
			src.mu.Unlock()
			if committed != 5 {
				t.Errorf("%d offsets committed, want the 5 before the refused deferred record", committed)
			}
			if dlq := b.ReadAll(t, "dr.in.dlq", 300*time.Millisecond, 10*time.Second); len(dlq) != 0 {
				t.Errorf("%d records on the dead-letter topic, want none", len(dlq))
			}
			if audits := b.ReadAll(t, "dr.audit", 300*time.Millisecond, 10*time.Second); len(audits) != 5 {
				t.Errorf("%d deferred records written, want the 5 of the committed inputs", len(audits))
			}
		})
	}
}
