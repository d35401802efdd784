package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestRunnerCommitsOnlyAfterOutputsAndRetriesFailedBatches runs the runner
// against the real broker process: a processor that fails transiently twice
// gets the same batch again, nothing is committed meanwhile, every input ends
// up with exactly one output, and a second consumer in the group finds
// nothing left to do.
func TestRunnerCommitsOnlyAfterOutputsAndRetriesFailedBatches(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2, Topics: []string{"rt.in", "rt.out"}})
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	w := stream.NewWriter(cfg)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const n = 200
	in := make([]kafka.Message, n)
	for i := range in {
		in[i] = kafka.Message{Topic: "rt.in", Key: []byte(fmt.Sprintf("k%d", i%17)), Value: []byte(fmt.Sprintf("v%d", i))}
	}
	if err := stream.WriteAll(ctx, w, in, nil); err != nil {
		t.Fatal(err)
	}

	rc := stream.ReaderConfig{Topics: []string{"rt.in"}, GroupID: "rt-group", MaxWait: 100 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
	if err := rc.Validate("RT_"); err != nil {
		t.Fatal(err)
	}
	r := stream.NewReader(cfg, rc)
	var failures atomic.Int32
	var seen atomic.Int64
	runner := &stream.Runner{
		Source: r, Sink: w, BatchSize: 50, Linger: 5 * time.Millisecond, DrainTimeout: 10 * time.Second,
		MaxBackoff: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
			if failures.Add(1) <= 2 {
				return nil, errors.New("consent store unavailable")
			}
			out := make([]kafka.Message, len(batch))
			for i, m := range batch {
				out[i] = kafka.Message{Topic: "rt.out", Key: m.Key, Value: m.Value}
			}
			seen.Add(int64(len(batch)))
			return out, nil
		},
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	for seen.Load() < n && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	// Stop and let the runner commit what it holds.
	time.Sleep(200 * time.Millisecond)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}
	r.Close()
	if got := runner.Retries.Load(); got != 2 {
		t.Errorf("runner retried %d times, want 2", got)
	}
	if got := runner.Records.Load(); got != n {
		t.Errorf("runner committed %d records, want %d", got, n)
	}

	out := b.ReadAll(t, "rt.out", 500*time.Millisecond, 20*time.Second)
	values := map[string]int{}
	for _, m := range out {
		values[string(m.Value)]++
	}
	for i := range n {
		if c := values[fmt.Sprintf("v%d", i)]; c != 1 {
			t.Errorf("input v%d produced %d outputs, want 1", i, c)
		}
	}

	// Committed offsets: a new member of the group finds nothing.
	r2 := stream.NewReader(cfg, rc)
	defer r2.Close()
	fctx, fcancel := context.WithTimeout(ctx, 8*time.Second)
	defer fcancel()
	if m, err := r2.FetchMessage(fctx); err == nil {
		t.Errorf("after commit the group still gets offset %d of partition %d", m.Offset, m.Partition)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	bad := stream.Config{Brokers: []string{"nohost", ":1"}, WriteTimeout: 0, BatchBytes: 1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, w := range []string{`"nohost"`, `":1"`, "KAFKA_WRITE_TIMEOUT", "KAFKA_BATCH_BYTES"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %s", err, w)
		}
	}
	if err := stream.DefaultConfig().Validate(); err != nil {
		t.Errorf("default config rejected: %v", err)
	}
	rc := stream.ReaderConfig{}
	err = rc.Validate("X_")
	for _, w := range []string{"X_TOPICS", "X_GROUP_ID", "X_MAX_WAIT", "X_SESSION_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("reader config error %v lacks %s", err, w)
		}
	}
}
