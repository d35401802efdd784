package stream_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestRunnerDoesNotPinARefusedRecordOnAnotherInputWithTheSameEventID: event
// ids come from the producers, and a producer's retry writes the same event
// twice. Inputs X and Y of one batch carry event id "dup"; Y's audit-like
// record (no source headers, tied to its input by event id only) can never
// be written. The runner must not dead-letter X in Y's place (X's value, X's
// coordinates, "ov.audit undelivered" while X's audit was written), leaving
// no trace of Y's: with two candidates the input is unknown, and the
// reference describes the refused record itself (consentgate.dlq.origin).
func TestRunnerDoesNotPinARefusedRecordOnAnotherInputWithTheSameEventID(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"am.in", "am.out", "am.audit", "am.in.dlq"}})
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	pw := stream.NewWriter(cfg)
	defer pw.Close()
	cfg.BatchBytes = 4096
	w := stream.NewWriter(cfg)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stream.WriteAll(ctx, pw, []kafka.Message{{Topic: "am.in", Value: []byte("X")}, {Topic: "am.in", Value: []byte("Y")}}, nil); err != nil {
		t.Fatal(err)
	}
	rc := stream.ReaderConfig{Topics: []string{"am.in"}, GroupID: "am-group", MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
	r := stream.NewReader(cfg, rc)
	defer r.Close()
	var sizes atomic.Int64
	runner := &stream.Runner{
		Source: r, Sink: w, BatchSize: 2, Linger: time.Second, DrainTimeout: time.Second, Depth: -1,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
			sizes.Store(int64(len(batch)))
			var out []kafka.Message
			for _, m := range batch {
				id := kafka.Header{Key: "consentgate.event_id", Value: []byte("dup")}
				out = append(out, kafka.Message{Topic: "am.out", Value: m.Value, Headers: []kafka.Header{id,
					{Key: "consentgate.source.topic", Value: []byte(m.Topic)},
					{Key: "consentgate.source.partition", Value: []byte(strconv.Itoa(m.Partition))},
					{Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(m.Offset, 10))}}})
				audit := kafka.Message{Topic: "am.audit", Value: []byte("audit"), Headers: []kafka.Header{id}}
				if string(m.Value) == "Y" {
					audit.Value = bytes.Repeat([]byte("y"), 8192)
				}
				out = append(out, audit)
			}
			return out, nil
		},
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	for runner.Records.Load() < 2 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sizes.Load() != 2 {
		t.Skipf("X and Y came in batches of %d: the case needs them in one", sizes.Load())
	}
	dlq := b.ReadAll(t, "am.in.dlq", 500*time.Millisecond, 10*time.Second)
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	m := dlq[0]
	if string(m.Value) == "X" {
		t.Fatalf("X (offset 0, whose audit was written) dead-lettered in place of Y: headers %v", m.Headers)
	}
	if o, _ := stream.Header(m, "consentgate.source.offset"); o == "0" {
		t.Fatalf("the dead letter names X's offset: headers %v", m.Headers)
	}
	if v, _ := stream.Header(m, "consentgate.dlq.origin"); v != "unknown" && string(m.Value) != "Y" {
		t.Errorf("dead letter neither Y's nor a reference of unknown origin: headers %v", m.Headers)
	}
}
