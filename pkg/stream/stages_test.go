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
