package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
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

// holdSink writes through the real writer; a write of a record whose value
// is hold waits (honouring ctx, as kafka.Writer does) until a dead-letter
// reference has been refused by the broker, and a little longer.
type holdSink struct {
	w       stream.Writer
	hold    string
	once    sync.Once
	refused chan struct{}
}

func (s *holdSink) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	for _, m := range msgs {
		if string(m.Value) == s.hold {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.refused:
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	err := s.w.WriteMessages(ctx, msgs...)
	if err != nil {
		for _, m := range msgs {
			if _, ref := stream.Header(m, "consentgate.dlq.reference"); ref {
				s.once.Do(func() { close(s.refused) })
			}
		}
	}
	return err
}

func (s *holdSink) BatchLimits() (int, int64) { l, b, _ := stream.BatchLimitsOf(s.w); return l, b }

// commitLog is the real reader, recording the offsets committed.
type commitLog struct {
	*kafka.Reader
	mu        sync.Mutex
	committed []string
}

func (s *commitLog) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := s.Reader.CommitMessages(ctx, msgs...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.committed = append(s.committed, fmt.Sprintf("%d/%d", m.Partition, m.Offset))
	}
	return nil
}

// TestRunnerFirstStageFailureFinishesTheEarlierBatch: batch 1 (input 1)
// cannot be written at all (its output, its dead letter and the reference
// are all refused by their topics), while batch 0's deferred (audit) record
// is still in flight in the second stage. Batch 0 came before the failed
// batch and every record of it can be acknowledged: as with sequential work
// it is finished and committed, and Run returns batch 1's error (the one
// that says what to fix), not the cancellation of batch 0.
func TestRunnerFirstStageFailureFinishesTheEarlierBatch(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"sf.in", "sf.audit"}})
	b.CreateTopicsWithConfig(t, 1, map[string]string{"max.message.bytes": "4096"}, "sf.out")
	b.CreateTopicsWithConfig(t, 1, map[string]string{"max.message.bytes": "128"}, "sf.in.dlq")
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	w := stream.NewWriter(cfg)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in := []kafka.Message{
		{Topic: "sf.in", Value: []byte("v0")},
		{Topic: "sf.in", Value: append([]byte("v1-"), bytes.Repeat([]byte("x"), 6<<10)...)},
	}
	if err := stream.WriteAll(ctx, w, in, nil); err != nil {
		t.Fatal(err)
	}
	rc := stream.ReaderConfig{Topics: []string{"sf.in"}, GroupID: "sf-group", MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
	src := &commitLog{Reader: stream.NewReader(cfg, rc)}
	defer src.Close()
	sink := &holdSink{w: w, hold: "audit 0", refused: make(chan struct{})}
	runner := &stream.Runner{
		Source: src, Sink: sink, BatchSize: 1, Linger: time.Millisecond, DrainTimeout: 5 * time.Second,
		MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Deferred: func(m kafka.Message) bool { return m.Topic == "sf.audit" },
		Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
			var out []kafka.Message
			for _, m := range batch {
				h := []kafka.Header{
					{Key: "consentgate.source.topic", Value: []byte(m.Topic)},
					{Key: "consentgate.source.partition", Value: []byte(strconv.Itoa(m.Partition))},
					{Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
				}
				out = append(out, kafka.Message{Topic: "sf.out", Value: m.Value, Headers: h},
					kafka.Message{Topic: "sf.audit", Value: []byte(fmt.Sprintf("audit %d", m.Offset)), Headers: h})
			}
			return out, nil
		},
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("runner still running 30s after a batch could not be written")
	}
	if err == nil || !strings.Contains(err.Error(), "references refused") {
		t.Errorf("Run returned %v, want the failed batch's error (dead-letter references refused)", err)
	}
	src.mu.Lock()
	committed := strings.Join(src.committed, " ")
	src.mu.Unlock()
	if committed != "0/0" {
		t.Errorf("committed [%s], want [0/0]: batch 0, before the failed batch, fully acknowledgeable", committed)
	}
}

// auditSink writes through the real writer, audit records slowly, and
// remembers what was acknowledged and whether other records were written
// while audit records were.
type auditSink struct {
	w          stream.Writer
	audit      string
	writingAud atomic.Int32
	overlapped atomic.Int32
	mu         sync.Mutex
	acked      map[string]bool // topic + " " + value
}

func (s *auditSink) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	aud := len(msgs) > 0 && msgs[0].Topic == s.audit
	if aud {
		s.writingAud.Add(1)
		defer s.writingAud.Add(-1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(40 * time.Millisecond):
		}
	} else if s.writingAud.Load() > 0 {
		s.overlapped.Add(1)
	}
	if err := s.w.WriteMessages(ctx, msgs...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.acked[m.Topic+" "+string(m.Value)] = true
	}
	return nil
}

func (s *auditSink) BatchLimits() (int, int64) { l, b, _ := stream.BatchLimitsOf(s.w); return l, b }

// auditSource is the real reader; it records fetch and commit order and
// every commit of an input whose output or audit record was not yet
// acknowledged.
type auditSource struct {
	*kafka.Reader
	sink                          *auditSink
	mu                            sync.Mutex
	fetched, committed, violating []string
}

func (s *auditSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	m, err := s.Reader.FetchMessage(ctx)
	if err == nil {
		s.mu.Lock()
		s.fetched = append(s.fetched, fmt.Sprintf("%d/%d", m.Partition, m.Offset))
		s.mu.Unlock()
	}
	return m, err
}

func (s *auditSource) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	s.sink.mu.Lock()
	var bad []string
	for _, m := range msgs {
		if !s.sink.acked["st.out "+string(m.Value)] || !s.sink.acked["st.audit audit "+string(m.Value)] {
			bad = append(bad, string(m.Value))
		}
	}
	s.sink.mu.Unlock()
	if err := s.Reader.CommitMessages(ctx, msgs...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violating = append(s.violating, bad...)
	for _, m := range msgs {
		s.committed = append(s.committed, fmt.Sprintf("%d/%d", m.Partition, m.Offset))
	}
	return nil
}

// TestRunnerPipelinedDeferredRecordsKeepTheGuarantees: with deferred
// (audit) records that are slow to write, the next batch's outputs are
// written while they are in flight, and yet: every commit comes after the
// acknowledgement of its inputs' outputs and audit records; commits follow
// fetch order; each input has exactly one output and one audit record, and
// both topics keep input order per key; stopping mid-way commits what is in
// hand.
func TestRunnerPipelinedDeferredRecordsKeepTheGuarantees(t *testing.T) {
	for _, depth := range []int{0, 3} {
		t.Run("depth="+strconv.Itoa(depth), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, brokertest.Options{Partitions: 3, Topics: []string{"st.in", "st.out", "st.audit"}})
			cfg := stream.DefaultConfig()
			cfg.Brokers = []string{b.Addr}
			w := stream.NewWriter(cfg)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			const n = 300
			in := make([]kafka.Message, n)
			for i := range in {
				in[i] = kafka.Message{Topic: "st.in", Key: []byte(fmt.Sprintf("k%d", i%11)), Value: []byte(fmt.Sprintf("v%04d", i))}
			}
			if err := stream.WriteAll(ctx, w, in, nil); err != nil {
				t.Fatal(err)
			}
			rc := stream.ReaderConfig{Topics: []string{"st.in"}, GroupID: "st-group", MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
			sink := &auditSink{w: w, audit: "st.audit", acked: map[string]bool{}}
			src := &auditSource{Reader: stream.NewReader(cfg, rc), sink: sink}
			var seen atomic.Int64
			runner := &stream.Runner{
				Source: src, Sink: sink, BatchSize: 20, Linger: 5 * time.Millisecond, DrainTimeout: 20 * time.Second, Depth: depth,
				MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Deferred: func(m kafka.Message) bool { return m.Topic == "st.audit" },
				Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
					var out []kafka.Message
					for _, m := range batch {
						h := []kafka.Header{
							{Key: "consentgate.source.topic", Value: []byte(m.Topic)},
							{Key: "consentgate.source.partition", Value: []byte(strconv.Itoa(m.Partition))},
							{Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
						}
						out = append(out, kafka.Message{Topic: "st.audit", Key: m.Key, Value: []byte("audit " + string(m.Value)), Headers: h},
							kafka.Message{Topic: "st.out", Key: m.Key, Value: m.Value, Headers: h})
					}
					seen.Add(int64(len(batch)))
					return out, nil
				},
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- runner.Run(rctx) }()
			for seen.Load() < n && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			stop() // batches still in both stages
			if err := <-done; err != nil {
				t.Fatalf("runner: %v", err)
			}
			src.Close()
			src.mu.Lock()
			if len(src.violating) > 0 {
				t.Errorf("%d inputs committed before their output and audit record were acknowledged: %v", len(src.violating), src.violating)
			}
			if got, want := strings.Join(src.committed, " "), strings.Join(src.fetched, " "); got != want {
				t.Errorf("commit order differs from fetch order:\ncommitted %s\nfetched   %s", got, want)
			}
			src.mu.Unlock()
			if got := runner.Records.Load(); got != n {
				t.Errorf("%d inputs committed, want %d", got, n)
			}
			if sink.overlapped.Load() == 0 {
				t.Error("no output was written while audit records were: the stages did not overlap")
			}
			for _, topic := range []string{"st.out", "st.audit"} {
				count, last := map[string]int{}, map[string]string{}
				for _, m := range b.ReadAll(t, topic, 500*time.Millisecond, 20*time.Second) {
					v := strings.TrimPrefix(string(m.Value), "audit ")
					count[v]++
					if prev := last[string(m.Key)]; prev >= v {
						t.Errorf("%s, key %s: %s after %s", topic, m.Key, v, prev)
					}
					last[string(m.Key)] = v
				}
				for i := range n {
					if c := count[fmt.Sprintf("v%04d", i)]; c != 1 {
						t.Errorf("%s: input v%04d has %d records, want 1", topic, i, c)
					}
				}
			}
		})
	}
}
