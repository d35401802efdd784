package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/schemas"
)

// benchAuditRecords encodes n audit records like the enforcer's on the
// demo policy: three streams each (passed, redacted with two treated
// fields, dropped), a consent reference per stream.
func benchAuditRecords(b *testing.B, codec *avrocodec.Codec, n int) []kafka.Message {
	b.Helper()
	at := time.UnixMilli(1_750_000_000_000).UTC()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		subject := fmt.Sprintf("subject-%08d", (i*7919)%100000)
		ref := func(purpose, change string) map[string]any {
			if change == "" {
				return map[string]any{"purpose": purpose, "consent_change_id": nil, "consent_captured_at": nil}
			}
			return map[string]any{"purpose": purpose, "consent_change_id": map[string]any{"string": change},
				"consent_captured_at": map[string]any{"long.timestamp-millis": at}}
		}
		v, err := codec.EncodeSingle(audit.Schema, map[string]any{
			"event_id": map[string]any{"string": fmt.Sprintf("event-%012d", i)}, "subject_id": map[string]any{"string": subject},
			"outcome": "DECIDED", "dead_letter_reason": nil, "event_schema": map[string]any{"string": "consentgate.events.PageView"},
			"policy_version": "2026-03-01", "source_topic": "customer.events", "source_partition": int32(i % 6), "source_offset": int64(i / 6),
			"processed_at": at.Add(time.Duration(i) * time.Millisecond),
			"decisions": []any{
				map[string]any{"stream": "compliant.analytics", "purposes": []any{"analytics"}, "decision": "PASSED", "reason": "granted",
					"deciding_purpose": "analytics", "treated_fields": []any{}, "consents": []any{ref("analytics", "chg-"+subject+"-1")}},
				map[string]any{"stream": "compliant.marketing", "purposes": []any{"marketing"}, "decision": "REDACTED", "reason": "granted_with_exclusions",
					"deciding_purpose": "marketing", "treated_fields": []any{"ip_address", "geo"}, "consents": []any{ref("marketing", "chg-"+subject+"-2")}},
				map[string]any{"stream": "compliant.personalisation", "purposes": []any{"personalisation"}, "decision": "DROPPED", "reason": "never_asked",
					"deciding_purpose": "personalisation", "treated_fields": []any{}, "consents": []any{ref("personalisation", "")}},
			}})
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: "consent.audit", Key: []byte(subject), Value: v}
	}
	return msgs
}

// BenchmarkConsumerSQLite is the ledger service's own ingest rate: audit
// records read from a real broker (the devbroker over TCP), decoded and
// written into a SQLite ledger with their positions, until the ledger
// covers them all (LEDGER_BENCH_CONSUMER_RECORDS, default 100,000, per
// iteration; each iteration a fresh ledger). It reports records/s, and
// store-records/s: the same records, decoded beforehand, ingested by
// Store.Ingest alone in batches of the consumer's size (the baseline the
// consumer adds its reading and decoding to).
func BenchmarkConsumerSQLite(b *testing.B) {
	n := 100000
	if v := os.Getenv("LEDGER_BENCH_CONSUMER_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("LEDGER_BENCH_CONSUMER_RECORDS=%q: want a positive integer", v)
		}
	}
	broker := brokertest.Start(b, brokertest.Options{Partitions: 3})
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	msgs := benchAuditRecords(b, codec, n)
	for i := 0; i < len(msgs); i += 10000 {
		benchProduce(b, broker.Addr, msgs[i:min(i+10000, len(msgs))])
	}
	cfg := DefaultConfig()
	topics := []Topic{{Name: "consent.audit", Kind: ledger.HoldsAudit}}
	ctx := context.Background()

	var consumerTime, storeTime time.Duration
	for i := 0; i < b.N; i++ {
		s, err := ledger.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "ledger.db"))
		if err != nil {
			b.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		c := &Consumer{Brokers: []string{broker.Addr}, Topics: topics, Store: s, Decoder: &ledger.Decoder{Codec: codec},
			BatchSize: cfg.BatchSize, Linger: cfg.Linger, Refresh: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		done := make(chan struct{})
		began := time.Now()
		go func() { defer close(done); _ = c.Run(cctx) }()
		benchWait(b, s, int64(n), 30*time.Minute)
		consumerTime += time.Since(began)
		cancel()
		<-done
		s.Close()

		// The baseline: the same records, decoded before the clock starts.
		s, err = ledger.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "store.db"))
		if err != nil {
			b.Fatal(err)
		}
		var batches []*ledger.Batch
		dec := &ledger.Decoder{Codec: codec}
		for start := 0; start < n; start += cfg.BatchSize {
			batch := &ledger.Batch{}
			next := map[int32]int64{}
			for j := start; j < min(start+cfg.BatchSize, n); j++ {
				m := msgs[j]
				m.Partition, m.Offset = 0, int64(j)
				if err := dec.Add(ctx, batch, ledger.HoldsAudit, m); err != nil {
					b.Fatal(err)
				}
				next[0] = int64(j) + 1
			}
			batch.Positions = []ledger.Position{{Topic: "consent.audit", Partition: 0, Next: next[0]}}
			batches = append(batches, batch)
		}
		began = time.Now()
		for _, batch := range batches {
			if err := s.Ingest(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		storeTime += time.Since(began)
		s.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/consumerTime.Seconds(), "records/s")
	b.ReportMetric(float64(n)*float64(b.N)/storeTime.Seconds(), "store-records/s")
	b.ReportMetric(0, "ns/op")
}

// benchProduce and benchWait are produce and waitRows for a benchmark.
func benchProduce(b *testing.B, addr string, msgs []kafka.Message) {
	b.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			b.Fatalf("produce: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func benchWait(b *testing.B, s *ledger.Store, want int64, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		pos, err := s.Positions(context.Background(), "consent.audit")
		if err != nil {
			b.Fatal(err)
		}
		var covered int64
		for _, next := range pos {
			covered += next
		}
		if covered >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the ledger covers %d of %d records after %s", covered, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
