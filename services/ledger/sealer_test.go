package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/pkg/topicread"
	"github.com/consentgate/consentgate/schemas"
)

// sealRig is a ledger consuming a real broker, with a sealer.
type sealRig struct {
	broker    *brokertest.Broker
	store     *ledger.Store
	sealer    *Sealer
	verifiers note.Verifiers
	codec     *avrocodec.Codec
}

func newSealRig(t *testing.T) *sealRig {
	t.Helper()
	r := &sealRig{broker: brokertest.Start(t, brokertest.Options{Partitions: 1})}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	r.codec = avrocodec.New(cat, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r.store, err = ledger.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := seal.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := seal.ParseSigner([]byte(skey))
	r.verifiers, _ = seal.ParseVerifiers([]byte(vkey))
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{r.broker.Addr}
	w := stream.NewWriter(cfg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.sealer = &Sealer{Ledger: r.store, Signer: signer, Writer: w, AuditTopic: "consent.audit", CheckpointsTopic: "consent.audit.checkpoints",
		Interval: 100 * time.Millisecond, Log: log}
	c := &Consumer{Brokers: []string{r.broker.Addr}, Topics: DefaultConfig().Topics(), Store: r.store,
		Decoder:   &ledger.Decoder{Codec: r.codec, LeafHash: leafHash, Checkpoint: checkpointReader("consent.audit", r.verifiers)},
		BatchSize: 100, Linger: 5 * time.Millisecond, Refresh: 200 * time.Millisecond, Log: log}
	done := make(chan struct{}, 2)
	go func() { _ = c.Run(ctx); done <- struct{}{} }()
	go func() { _ = r.sealer.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done; w.Close(); r.store.Close() })
	return r
}

func (r *sealRig) auditValue(t *testing.T, i int) []byte {
	t.Helper()
	b, err := r.codec.EncodeSingle(audit.Schema, map[string]any{
		"event_id": map[string]any{"string": fmt.Sprintf("e-%d", i)}, "subject_id": map[string]any{"string": "s"},
		"outcome": "DECIDED", "dead_letter_reason": nil, "event_schema": nil, "policy_version": "p", "source_topic": "customer.events",
		"source_partition": int32(0), "source_offset": int64(i), "processed_at": time.UnixMilli(1_750_000_000_000), "decisions": []any{}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitSealed waits until the ledger holds a checkpoint of size n for
// partition 0 and returns its notes.
func (r *sealRig) waitSealed(t *testing.T, n int64) [][]byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cps, err := r.store.Checkpoints(context.Background(), "consent.audit", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cps {
			if c.Size == n {
				notes := make([][]byte, len(cps))
				for i := range cps {
					notes[i] = cps[i].Note
				}
				return notes
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d after 30s (checkpoints %d, problems %v)", n, len(cps), r.sealer.Problems())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSealerSealsEveryAuditRecordUndecodableOnesToo: a record on the
// audit topic that is not an audit record (a producer's mistake, or
// tampering) is a leaf like any other. Before undecodable records kept
// their leaf hash, the ledger had no leaf for it, the sealer saw a gap and
// stopped sealing the partition, and the audit stayed unsealed.
func TestSealerSealsEveryAuditRecordUndecodableOnesToo(t *testing.T) {
	r := newSealRig(t)
	msgs := []kafka.Message{
		{Topic: "consent.audit", Key: []byte("s"), Value: r.auditValue(t, 0)},
		{Topic: "consent.audit", Value: []byte("not an audit record")},
		{Topic: "consent.audit", Key: []byte("s"), Value: r.auditValue(t, 2)},
	}
	produce(t, r.broker.Addr, msgs)
	notes := r.waitSealed(t, 3)
	if p := r.sealer.Problems(); len(p) > 0 {
		t.Fatalf("sealer problems: %v", p)
	}
	// The checkpoints verify against the topic itself.
	c := &topicread.Client{Brokers: []string{r.broker.Addr}}
	var recs []seal.Record
	if err := c.Read(context.Background(), "consent.audit", 0, 0, 3, func(m kafka.Message) error {
		recs = append(recs, seal.Record{Offset: m.Offset, Key: m.Key, Value: m.Value})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := seal.Verify(seal.Input{Topic: "consent.audit", Partition: 0, Records: seal.RecordSlice(recs), Checkpoints: notes, Verifiers: r.verifiers})
	if err != nil || !rep.OK() || rep.Sealed != 3 {
		t.Fatalf("verify: %v\n%s", err, rep)
	}
}

// TestSealerGrowsAndKeepsCheckpointsConsistent: checkpoints published as
// the audit grows are of one append-only tree.
func TestSealerGrowsAndKeepsCheckpointsConsistent(t *testing.T) {
	r := newSealRig(t)
	var recs []kafka.Message
	for i := range 5 {
		recs = append(recs, kafka.Message{Topic: "consent.audit", Key: []byte("s"), Value: r.auditValue(t, i)})
	}
	produce(t, r.broker.Addr, recs[:2])
	r.waitSealed(t, 2)
	produce(t, r.broker.Addr, recs[2:])
	notes := r.waitSealed(t, 5)
	c := &topicread.Client{Brokers: []string{r.broker.Addr}}
	var all []seal.Record
	if err := c.Read(context.Background(), "consent.audit", 0, 0, 5, func(m kafka.Message) error {
		all = append(all, seal.Record{Offset: m.Offset, Key: m.Key, Value: m.Value})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := seal.Verify(seal.Input{Topic: "consent.audit", Partition: 0, Records: seal.RecordSlice(all), Checkpoints: notes, Verifiers: r.verifiers})
	if err != nil || !rep.OK() || rep.Valid < 2 {
		t.Fatalf("verify (%d checkpoints): %v\n%s", len(notes), err, rep)
	}
	if n := r.sealer.Published(); n < 2 {
		t.Errorf("published %d checkpoints, want one per growth", n)
	}
}
