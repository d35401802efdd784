package stream_test

import (
	"context"
	"errors"
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

// checkedSink writes through the real kafka.Writer, slowly, and remembers
// which input values have their output acknowledged. Writes of a value
// listed in failFirst fail once before reaching the broker; writes of a
// value in failAlways never succeed.
type checkedSink struct {
	w          stream.Writer
	delay      time.Duration
	failFirst  map[string]bool
	failAlways string

	writing atomic.Int32
	mu      sync.Mutex
	acked   map[string]bool
	failed  map[string]bool
}

func (s *checkedSink) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	s.writing.Add(1)
	defer s.writing.Add(-1)
	time.Sleep(s.delay)
	s.mu.Lock()
	for _, m := range msgs {
		v := string(m.Value)
		if v == s.failAlways || (s.failFirst[v] && !s.failed[v]) {
			s.failed[v] = true
			s.mu.Unlock()
			return errors.New("broker unavailable")
		}
	}
	s.mu.Unlock()
	if err := s.w.WriteMessages(ctx, msgs...); err != nil {
		return err
	}
	s.mu.Lock()
	for _, m := range msgs {
		s.acked[string(m.Value)] = true
	}
	s.mu.Unlock()
	return nil
}

// checkedSource is the real reader; it records what was fetched and
// committed, and every commit of an input whose output was not yet
// acknowledged.
type checkedSource struct {
	*kafka.Reader
	sink *checkedSink

	mu         sync.Mutex
	fetched    []string // "partition/offset", in fetch order
	committed  []string // in commit order
	violations []string
}

func (s *checkedSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	m, err := s.Reader.FetchMessage(ctx)
	if err == nil {
		s.mu.Lock()
		s.fetched = append(s.fetched, fmt.Sprintf("%d/%d", m.Partition, m.Offset))
		s.mu.Unlock()
	}
	return m, err
}

func (s *checkedSource) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	s.sink.mu.Lock()
	for _, m := range msgs {
		if !s.sink.acked[string(m.Value)] {
			s.violations = append(s.violations, string(m.Value))
		}
	}
	s.sink.mu.Unlock()
	if err := s.Reader.CommitMessages(ctx, msgs...); err != nil {
		return err
	}
	s.mu.Lock()
	for _, m := range msgs {
		s.committed = append(s.committed, fmt.Sprintf("%d/%d", m.Partition, m.Offset))
	}
	s.mu.Unlock()
	return nil
}

// TestRunnerPipelinesAndKeepsItsGuarantees runs the pipelined runner against
// the real broker process with a slow sink whose writes sometimes fail once,
// and a processor that fails transiently twice: processing overlaps with
// writing; every commit comes after its outputs' acknowledgement; commits
// follow fetch order exactly; each input has exactly one output and outputs
// keep input order per key; stopping while a batch is being written still
// commits it. Depth -1 (sequential) keeps the same guarantees without the
// overlap.
func TestRunnerPipelinesAndKeepsItsGuarantees(t *testing.T) {
	for _, depth := range []int{-1, 0, 3} {
		t.Run("depth="+strconv.Itoa(depth), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, brokertest.Options{Partitions: 3, Topics: []string{"pl.in", "pl.out"}})
			cfg := stream.DefaultConfig()
			cfg.Brokers = []string{b.Addr}
			w := stream.NewWriter(cfg)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			const n = 400
			in := make([]kafka.Message, n)
			failFirst := map[string]bool{}
			for i := range in {
				v := fmt.Sprintf("v%04d", i)
				in[i] = kafka.Message{Topic: "pl.in", Key: []byte(fmt.Sprintf("k%d", i%13)), Value: []byte(v)}
				if i%97 == 5 {
					failFirst[v] = true
				}
			}
			if err := stream.WriteAll(ctx, w, in, nil); err != nil {
				t.Fatal(err)
			}
			rc := stream.ReaderConfig{Topics: []string{"pl.in"}, GroupID: "pl-group", MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
			sink := &checkedSink{w: w, delay: 30 * time.Millisecond, failFirst: failFirst, acked: map[string]bool{}, failed: map[string]bool{}}
			src := &checkedSource{Reader: stream.NewReader(cfg, rc), sink: sink}
			var calls, overlapped atomic.Int32
			var seen atomic.Int64
			runner := &stream.Runner{
				Source: src, Sink: sink, BatchSize: 40, Linger: 5 * time.Millisecond, DrainTimeout: 20 * time.Second, Depth: depth,
				MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
					if c := calls.Add(1); c == 3 || c == 4 {
						return nil, errors.New("consent store unavailable")
					}
					if sink.writing.Load() > 0 {
						overlapped.Add(1)
					}
					out := make([]kafka.Message, len(batch))
					for i, m := range batch {
						out[i] = kafka.Message{Topic: "pl.out", Key: m.Key, Value: m.Value}
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
			// Stop at once: the last batch is still being written.
			stop()
			if err := <-done; err != nil {
				t.Fatalf("runner: %v", err)
			}
			src.Close()

			if len(src.violations) > 0 {
				t.Errorf("%d inputs committed before their output was acknowledged", len(src.violations))
			}
			if got, want := strings.Join(src.committed, " "), strings.Join(src.fetched, " "); got != want {
				t.Errorf("commit order differs from fetch order:\ncommitted %s\nfetched   %s", got, want)
			}
			if got := runner.Records.Load(); got != n {
				t.Errorf("runner committed %d records, want %d", got, n)
			}
			if depth >= 0 && overlapped.Load() == 0 {
				t.Error("processing never overlapped with writing")
			}

			out := b.ReadAll(t, "pl.out", 500*time.Millisecond, 20*time.Second)
			count := map[string]int{}
			last := map[string]string{}
			for _, m := range out {
				v := string(m.Value)
				count[v]++
				if prev := last[string(m.Key)]; prev >= v {
					t.Errorf("key %s: output %s after %s", m.Key, v, prev)
				}
				last[string(m.Key)] = v
			}
			for i := range n {
				if c := count[fmt.Sprintf("v%04d", i)]; c != 1 {
					t.Errorf("input v%04d produced %d outputs, want 1", i, c)
				}
			}

			r2 := stream.NewReader(cfg, rc)
			defer r2.Close()
			fctx, fcancel := context.WithTimeout(ctx, 8*time.Second)
			defer fcancel()
			if m, err := r2.FetchMessage(fctx); err == nil {
				t.Errorf("after commit the group still gets offset %d of partition %d", m.Offset, m.Partition)
			}
		})
	}
}

// TestRunnerStopsCommittingAfterAFailedWrite: a batch whose records are
// never acknowledged stops the runner; batches processed after it are
// neither written nor committed, and Run returns the error once the drain
// timeout has passed.
func TestRunnerStopsCommittingAfterAFailedWrite(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"pf.in", "pf.out"}})
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	w := stream.NewWriter(cfg)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n, poison = 100, "v0050"
	in := make([]kafka.Message, n)
	for i := range in {
		in[i] = kafka.Message{Topic: "pf.in", Value: []byte(fmt.Sprintf("v%04d", i))}
	}
	if err := stream.WriteAll(ctx, w, in, nil); err != nil {
		t.Fatal(err)
	}
	rc := stream.ReaderConfig{Topics: []string{"pf.in"}, GroupID: "pf-group", MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
	sink := &checkedSink{w: w, failAlways: poison, acked: map[string]bool{}, failed: map[string]bool{}}
	src := &checkedSource{Reader: stream.NewReader(cfg, rc), sink: sink}
	defer src.Close()
	var processedAfter atomic.Int32
	runner := &stream.Runner{
		Source: src, Sink: sink, BatchSize: 10, Linger: 5 * time.Millisecond, DrainTimeout: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
			if string(batch[0].Value) > poison {
				processedAfter.Add(1)
			}
			out := make([]kafka.Message, len(batch))
			for i, m := range batch {
				out[i] = kafka.Message{Topic: "pf.out", Value: m.Value}
			}
			return out, nil
		},
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	for ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		sink.mu.Lock()
		failed := sink.failed[poison]
		sink.mu.Unlock()
		if failed {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "uncommitted") {
		t.Fatalf("Run returned %v, want the write error", err)
	}
	if len(src.violations) > 0 {
		t.Errorf("%d inputs committed before their output was acknowledged", len(src.violations))
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if got := len(src.committed); got > 50 {
		t.Errorf("%d offsets committed, want at most the 50 before the failing batch", got)
	}
	for _, c := range src.committed {
		if off, _ := strconv.Atoi(strings.TrimPrefix(c, "0/")); off >= 50 {
			t.Errorf("offset %d committed after the failed batch", off)
		}
	}
	if processedAfter.Load() > 1 {
		t.Errorf("%d batches after the failing one processed, want at most 1 (depth 1)", processedAfter.Load())
	}
}
