package apply

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// refuseNotices is a sink whose brokers never acknowledge a revocation
// notice: the process dies before any notice is acknowledged.
type refuseNotices struct {
	w        stream.Writer
	attempts atomic.Int64
}

func (r *refuseNotices) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	for _, m := range msgs {
		if m.Topic == revocations {
			r.attempts.Add(1)
			return errors.New("test: notice not acknowledged")
		}
	}
	return r.w.WriteMessages(ctx, msgs...)
}

// TestOffsetsCommitOnlyAfterTheNoticeIsAcknowledged proves the drain rule
// of the notice outbox against the real runner, consumer group and broker:
// a batch whose notice is not acknowledged is not committed, so after a
// crash the change is delivered again, finds its outbox entry and publishes
// the notice (same notice id) even though a newer grant was stored since;
// the entry is removed once that notice is acknowledged.
func TestOffsetsCommitOnlyAfterTheNoticeIsAcknowledged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	const topic = "notice.commit"
	broker.CreateTopics(t, 1, topic)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	w := stream.NewWriter(kc)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for _, c := range []consent.Change{
		pchange("g1", "s1", "marketing", consent.ActionGrant, 0),
		pchange("w1", "s1", "marketing", consent.ActionWithdraw, 10),
		pchange("g2", "s1", "marketing", consent.ActionGrant, 20),
	} {
		m := f.msg(0, c)
		m.Topic, m.Offset, m.Time = topic, 0, time.Time{}
		msgs = append(msgs, m)
	}
	if err := stream.WriteAll(ctx, w, msgs, nil); err != nil {
		t.Fatal(err)
	}
	rc := stream.ReaderConfig{Topics: []string{topic}, GroupID: "notice-commit", MaxWait: 100 * time.Millisecond,
		SessionTimeout: 6 * time.Second, FromBeginning: true}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(s *Syncer, sink stream.Writer, until func() bool) {
		t.Helper()
		r := stream.NewReader(kc, rc)
		defer r.Close()
		runner := &stream.Runner{Source: r, Sink: s.Sink(sink), Process: s.Process, BatchSize: 10, Linger: 50 * time.Millisecond,
			DrainTimeout: 200 * time.Millisecond, Log: log}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- runner.Run(rctx) }()
		for !until() {
			if ctx.Err() != nil {
				t.Fatal("timed out")
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		<-done
	}
	pending := func() bool {
		n, err := f.srv.Client(t).HExists(ctx, f.store.OutboxKey("s1"), "w1").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// First process: everything applied, w1's notice never acknowledged.
	refuse := &refuseNotices{w: w}
	run(f.syncer(), refuse, func() bool { return refuse.attempts.Load() >= 2 })
	if !pending() {
		t.Fatal("w1's outbox entry is gone although its notice was never acknowledged")
	}

	// Second process: w1 is delivered again (its offset was not committed).
	var published []map[string]any
	run(f.syncer(), w, func() bool {
		if pending() {
			return false
		}
		published = f.notices(broker.ReadAll(t, revocations, 300*time.Millisecond, 5*time.Second))
		return true
	})
	var withdrawal map[string]any
	for _, n := range published {
		if id, _ := avrocodec.StringField(n, "notice_id"); id == NoticeID("w1") {
			withdrawal = n
		}
	}
	if withdrawal == nil {
		t.Fatalf("notices published %v, want %s", noticeIDs(published), NoticeID("w1"))
	}
	if r, _ := avrocodec.StringField(withdrawal, "reason"); r != "consent withdrawn: delete data received for this purpose" {
		t.Errorf("notice reason %q", r)
	}
	if since, _ := avrocodec.Field(withdrawal, "since"); !since.(time.Time).Equal(t0.Add(10 * time.Millisecond)) {
		t.Errorf("notice since %v, want w1's captured_at", since)
	}
}

// The notice-acknowledging wrapper tells stream.WriteEach the produce batch
// limits of the writer it wraps, which WriteEach needs to keep order per key.
func TestSinkPassesOnBatchLimits(t *testing.T) {
	w := &kafka.Writer{BatchSize: 7, BatchBytes: 12345}
	s := New(Options{RevocationsTopic: "r", DLQSuffix: ".dlq"}, nil, nil)
	bl, ok := s.Sink(w).(stream.BatchLimiter)
	if !ok {
		t.Fatal("Sink's writer does not implement stream.BatchLimiter")
	}
	if r, b := bl.BatchLimits(); r != 7 || b != 12345 {
		t.Fatalf("BatchLimits = %d, %d, want 7, 12345", r, b)
	}
}
