package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// flakyStore fails every n-th Ingest before writing anything, as a database
// that drops the connection would.
type flakyStore struct {
	*ledger.Store
	n, calls atomic.Int64
}

func (f *flakyStore) Ingest(ctx context.Context, b *ledger.Batch) error {
	if c := f.calls.Add(1); f.n.Load() > 0 && c%f.n.Load() == 0 {
		return errors.New("injected: connection lost")
	}
	return f.Store.Ingest(ctx, b)
}

type testRecords struct {
	msgs                                          []kafka.Message
	changes, audits, notices, letters, undecoding int
}

func makeRecords(t *testing.T, codec *avrocodec.Codec, n int) testRecords {
	t.Helper()
	var r testRecords
	at := time.UnixMilli(1_750_000_000_000).UTC()
	for i := range n {
		subject := fmt.Sprintf("subject-%03d", i%37)
		c := consent.Change{ChangeID: fmt.Sprintf("c-%04d", i), SubjectID: subject, Purpose: "marketing", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "v1", CapturedAt: at.Add(time.Duration(i) * time.Second)}
		b, err := codec.EncodeSingle(ledger.ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		r.msgs = append(r.msgs, kafka.Message{Topic: "consent.changes", Key: []byte(subject), Value: b})
		r.changes++
		b, err = codec.EncodeSingle(audit.Schema, map[string]any{
			"event_id": map[string]any{"string": fmt.Sprintf("e-%04d", i)}, "subject_id": map[string]any{"string": subject},
			"outcome": "DECIDED", "dead_letter_reason": nil, "event_schema": map[string]any{"string": "consentgate.events.PageView"},
			"policy_version": "p1", "source_topic": "customer.events", "source_partition": int32(i % 3), "source_offset": int64(i / 3),
			"processed_at": at, "decisions": []any{}})
		if err != nil {
			t.Fatal(err)
		}
		r.msgs = append(r.msgs, kafka.Message{Topic: "consent.audit", Key: []byte(subject), Value: b})
		r.audits++
		if i%6 == 0 {
			b, err = codec.EncodeSingle(ledger.NoticeSchema, map[string]any{"notice_id": "rev-" + c.ChangeID, "subject_id": subject,
				"purposes": []any{"marketing"}, "action": "WITHDRAW", "since": at, "change_id": c.ChangeID, "reason": "test", "issued_at": at})
			if err != nil {
				t.Fatal(err)
			}
			r.msgs = append(r.msgs, kafka.Message{Topic: "consent.revocations", Key: []byte(subject), Value: b})
			r.notices++
		}
		if i%10 == 0 {
			r.msgs = append(r.msgs, kafka.Message{Topic: "customer.events.dlq", Value: []byte("raw input"),
				Headers: []kafka.Header{{Key: stream.HeaderDLQReason, Value: []byte("undecodable")}}})
			r.letters++
		}
		if i%50 == 0 {
			r.msgs = append(r.msgs, kafka.Message{Topic: "consent.audit", Value: []byte("not an audit record")})
			r.undecoding++
		}
	}
	return r
}

func produce(t *testing.T, addr string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		// A topic just created may not be known to the writer yet.
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatalf("produce: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRows waits until the ledger's positions cover want records in all.
func waitRows(t *testing.T, s *ledger.Store, want int64, within time.Duration) *ledger.Stats {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var covered int64
		for _, p := range st.Positions {
			covered += p.Next
		}
		if covered >= want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger covers %d of %d records after %s: %+v", covered, want, within, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConsumerStoresEveryRecordOnceThroughFailuresAndRestarts(t *testing.T) {
	broker := brokertest.Start(t, brokertest.Options{Partitions: 3})
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	recs := makeRecords(t, codec, 300)
	produce(t, broker.Addr, recs.msgs[:len(recs.msgs)/2])

	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	base, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	store := &flakyStore{Store: base}
	store.n.Store(3) // every third transaction fails
	topics := DefaultConfig().Topics()
	run := func(batch int) (stop func()) {
		cctx, cancel := context.WithCancel(ctx)
		c := &Consumer{Brokers: []string{broker.Addr}, Topics: topics, Store: store, Decoder: &ledger.Decoder{Codec: codec},
			BatchSize: batch, Linger: 5 * time.Millisecond, Refresh: 200 * time.Millisecond,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(cctx) }()
		return func() { cancel(); <-done }
	}
	stop := run(17)
	half := int64(len(recs.msgs) / 2)
	began := time.Now()
	waitRows(t, base, half, 60*time.Second)
	t.Logf("first half (%d records) in %s", half, time.Since(began))
	stop() // the process stops; a new one starts from the stored positions

	// A dead-letter topic created after the start is found at a refresh.
	broker.CreateTopics(t, 2, "consent.changes.dlq")
	late := kafka.Message{Topic: "consent.changes.dlq", Value: []byte("bad change"),
		Headers: []kafka.Header{{Key: stream.HeaderDLQReason, Value: []byte("invalid_change")}}}
	produce(t, broker.Addr, append(recs.msgs[len(recs.msgs)/2:], late))
	stop = run(29)
	waitRows(t, base, int64(len(recs.msgs))+1, 60*time.Second)
	stop()
	st, err := base.Stats(ctx) // after the stop: counts and positions of one moment
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]int64{"consent_changes": int64(recs.changes), "audit_records": int64(recs.audits),
		"revocation_notices": int64(recs.notices), "dead_letters": int64(recs.letters) + 1, "undecodable_records": int64(recs.undecoding)}
	for table, n := range want {
		if st.Tables[table] != n {
			t.Errorf("%s: %d rows, want %d (every record once)", table, st.Tables[table], n)
		}
	}
	if t.Failed() {
		for _, p := range st.Positions {
			t.Logf("position %s/%d next %d", p.Topic, p.Partition, p.Next)
		}
		t.Logf("stats %+v", st.Tables)
	}
	if store.calls.Load() < 6 {
		t.Errorf("only %d transactions: the injected failures were not exercised", store.calls.Load())
	}
}
