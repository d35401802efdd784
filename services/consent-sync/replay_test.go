package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
	"github.com/consentgate/consentgate/services/consent-sync/internal/apply"
)

// The warmer sees a node behind and decides to replay it from its
// watermark; before the replay begins, the node comes back from an older
// snapshot with a lower watermark. The replay must start from the lower
// one: starting from the watermark read before, it skipped the changes in
// between and then marked the node complete, and the enforcer decided on a
// grant that had been withdrawn.
func TestReplayFromWatermarkAfterRestore(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	const topic, group = "consent.replay.test", "replay-test-group"
	broker.CreateTopics(t, 1, topic)
	srv := redistest.Start(t)
	prefix := redistest.PrefixFor(t)
	store := consent.NewStore(srv.Client(t), prefix)
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = []string{broker.Addr}
	cfg.Input.Topics, cfg.Input.GroupID = []string{topic}, group

	t0 := time.UnixMilli(1_790_000_000_000)
	changes := []consent.Change{
		{ChangeID: "g1", SubjectID: "s1", Action: consent.ActionGrant, CapturedAt: t0},
		{ChangeID: "w1", SubjectID: "s1", Action: consent.ActionWithdraw, CapturedAt: t0.Add(time.Second)},
		{ChangeID: "g2", SubjectID: "s2", Action: consent.ActionGrant, CapturedAt: t0.Add(2 * time.Second)},
	}
	var msgs []kafka.Message
	for i := range changes {
		c := &changes[i]
		c.Purpose, c.LegalBasis, c.Source, c.NoticeVersion = "marketing", consent.BasisConsent, "test", "1"
		b, err := codec.EncodeSingle(apply.ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(c.SubjectID), Value: b, Time: c.CapturedAt})
	}
	pw := stream.NewWriter(cfg.Kafka)
	defer pw.Close()
	if err := stream.WriteAll(ctx, pw, msgs, nil); err != nil {
		t.Fatal(err)
	}
	// consent-sync consumed and committed all three.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Kafka.Brokers, GroupID: group, Topic: topic, StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	for range 3 {
		m, err := r.FetchMessage(ctx)
		if err == nil {
			err = r.CommitMessages(ctx, m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.Close()

	tp := consent.TopicPartition{Topic: topic, Partition: 0}
	// Redis: g1 and a watermark at 1, snapshotted; then w1, raising it to
	// 2; g2 applied but not advanced (a crash in between).
	if _, err := store.Apply(ctx, changes[0]); err != nil {
		t.Fatal(err)
	}
	token, err := store.BeginReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := store.SetWatermark(ctx, token, consent.Offsets{tp: 1}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	srv.Snapshot(t)
	if _, err := store.Apply(ctx, changes[1]); err != nil {
		t.Fatal(err)
	}
	if err := store.Advance(ctx, []consent.Range{{TopicPartition: tp, First: 1, Next: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(ctx, changes[2]); err != nil {
		t.Fatal(err)
	}

	replay := apply.Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq", Replay: true}
	w := &warmer{log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), cfg: cfg, store: store,
		newReplay: func() *apply.Syncer { return apply.New(replay, codec, store) }}
	w.beforeReplay = func() {
		srv.Restart() // back to the snapshot: g1, watermark 1
		for {         // the client reconnects
			if _, err := store.Watermarks(ctx); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := w.check(ctx); err != nil {
		t.Fatal(err)
	}

	gated := consent.NewStore(srv.Client(t), prefix).RequireFresh(freshness(consent.Offsets{tp: 3}))
	got, err := gated.Lookup(ctx, []string{"s1"})
	if err != nil {
		t.Fatalf("lookup after the replay: %v", err)
	}
	if st := got["s1"].Purposes["marketing"].Status; st != consent.StatusWithdrawn {
		t.Fatalf("s1 after the replay: %q, want withdrawn (the replay skipped offset 1 and marked the node complete)", st)
	}
}

func freshness(committed consent.Offsets) *consent.Freshness {
	f := consent.NewFreshness(time.Minute)
	f.Set(committed, time.Now(), nil)
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
