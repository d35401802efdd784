package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
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
	signer    note.Signer
	verifiers note.Verifiers
	codec     *avrocodec.Codec
	ctx       context.Context
	log       *slog.Logger
	wg        sync.WaitGroup
}

// sealRigOptions: a zero value is a new broker, a new key, and a sealer
// and a consumer of every topic running.
type sealRigOptions struct {
	broker *brokertest.Broker // nil: a new one
	from   *sealRig           // another rig whose key this one signs with too
	manual bool               // the test calls SealOnce; no consumer runs (see consume)
}

func newSealRig(t *testing.T, o sealRigOptions) *sealRig {
	t.Helper()
	r := &sealRig{broker: o.broker}
	if r.broker == nil {
		r.broker = brokertest.Start(t, brokertest.Options{Partitions: 1})
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	r.codec = avrocodec.New(cat, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	r.store, err = ledger.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	if o.from != nil {
		r.signer, r.verifiers = o.from.signer, o.from.verifiers
	} else {
		skey, vkey, err := seal.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r.signer, _ = seal.ParseSigner([]byte(skey))
		r.verifiers, _ = seal.ParseVerifiers([]byte(vkey))
	}
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{r.broker.Addr}
	w := stream.NewWriter(cfg)
	r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	r.sealer = &Sealer{Ledger: r.store, Signer: r.signer, Writer: w, AuditTopic: "consent.audit", CheckpointsTopic: "consent.audit.checkpoints",
		Offsets: &topicread.Client{Brokers: []string{r.broker.Addr}}, Interval: 100 * time.Millisecond, Log: r.log}
	t.Cleanup(func() { cancel(); r.wg.Wait(); w.Close(); r.store.Close() })
	if !o.manual {
		r.consume(t, DefaultConfig().Topics())
		r.wg.Go(func() { _ = r.sealer.Run(ctx) })
	}
	return r
}

// consume runs a consumer of topics into the rig's ledger, which feeds the
// sealer, until the function it returns is called or the test ends.
func (r *sealRig) consume(t *testing.T, topics []Topic) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	c := &Consumer{Brokers: []string{r.broker.Addr}, Topics: topics, Store: r.store,
		Decoder:   &ledger.Decoder{Codec: r.codec, LeafHash: leafHash, Checkpoint: checkpointReader("consent.audit", r.verifiers)},
		BatchSize: 100, Linger: 5 * time.Millisecond, Refresh: 200 * time.Millisecond, Log: r.log, Ingested: r.sealer.Ingested}
	done := make(chan struct{})
	r.wg.Go(func() { _ = c.Run(ctx); close(done) })
	return func() { cancel(); <-done }
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
	r := newSealRig(t, sealRigOptions{})
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
	r := newSealRig(t, sealRigOptions{})
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

// auditRecords are audit records i in [from, from+n) for partition 0.
func (r *sealRig) auditRecords(t *testing.T, from, n int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for i := from; i < from+n; i++ {
		out = append(out, kafka.Message{Topic: "consent.audit", Key: []byte("s"), Value: r.auditValue(t, i)})
	}
	return out
}

// rootOf is the root of the first n records auditRecords makes, at offsets
// 0..n-1 of partition 0 (the rig's broker has one partition and the test
// is its only producer).
func (r *sealRig) rootOf(t *testing.T, n int) [32]byte {
	t.Helper()
	tree := seal.NewTree("consent.audit", 0, 0)
	for i, m := range r.auditRecords(t, 0, n) {
		if _, err := tree.Append(int64(i), m.Key, m.Value); err != nil {
			t.Fatal(err)
		}
	}
	root, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// publish signs cp with the rig's key and publishes it on the checkpoints
// topic, as another sealer would.
func (r *sealRig) publish(t *testing.T, size int64, root [32]byte) {
	t.Helper()
	msg, err := seal.Sign(r.signer, seal.Checkpoint{Topic: "consent.audit", Partition: 0, Base: 0, Size: size, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, r.broker.Addr, []kafka.Message{{Topic: "consent.audit.checkpoints", Key: []byte(seal.Origin("consent.audit", 0)), Value: msg}})
}

// waitFor polls the rig's ledger until ok holds of it.
func (r *sealRig) waitFor(t *testing.T, what string, ok func(leaves []ledger.Leaf, cps []ledger.Checkpoint) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ls, err := r.store.Leaves(context.Background(), "consent.audit", 0, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		cps, err := r.store.Checkpoints(context.Background(), "consent.audit", 0)
		if err != nil {
			t.Fatal(err)
		}
		if ok(ls, cps) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger does not hold %s after 30s (%d leaves, %d checkpoints)", what, len(ls), len(cps))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *sealRig) waitLeaves(t *testing.T, n int) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d audit records", n), func(ls []ledger.Leaf, _ []ledger.Checkpoint) bool { return len(ls) == n })
}

// waitCheckpoints waits until the ledger holds n checkpoints of size size.
func (r *sealRig) waitCheckpoints(t *testing.T, size int64, n int) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d checkpoints of size %d", n, size), func(_ []ledger.Leaf, cps []ledger.Checkpoint) bool {
		k := 0
		for _, c := range cps {
			if c.Size == size {
				k++
			}
		}
		return k == n
	})
}

func (r *sealRig) sealOnce(t *testing.T) {
	t.Helper()
	if err := r.sealer.SealOnce(context.Background()); err != nil {
		t.Fatalf("SealOnce: %v", err)
	}
}

// verifyTopic checks every checkpoint the ledger holds against the audit
// topic's first n records, as consentctl verify does.
func (r *sealRig) verifyTopic(t *testing.T, n int64) *seal.Report {
	t.Helper()
	cps, err := r.store.Checkpoints(context.Background(), "consent.audit", 0)
	if err != nil {
		t.Fatal(err)
	}
	var notes [][]byte
	for _, c := range cps {
		notes = append(notes, c.Note)
	}
	c := &topicread.Client{Brokers: []string{r.broker.Addr}}
	var recs []seal.Record
	if err := c.Read(context.Background(), "consent.audit", 0, 0, n, func(m kafka.Message) error {
		recs = append(recs, seal.Record{Offset: m.Offset, Key: m.Key, Value: m.Value})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := seal.Verify(seal.Input{Topic: "consent.audit", Partition: 0, Records: seal.RecordSlice(recs), Checkpoints: notes, Verifiers: r.verifiers})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// sealedThree is a manual rig whose ledger holds three audit records and
// the sealer's checkpoint of them.
func sealedThree(t *testing.T) *sealRig {
	t.Helper()
	r := newSealRig(t, sealRigOptions{manual: true})
	r.consume(t, DefaultConfig().Topics())
	produce(t, r.broker.Addr, r.auditRecords(t, 0, 3))
	r.waitLeaves(t, 3)
	r.sealOnce(t)
	r.waitCheckpoints(t, 3, 1)
	r.sealOnce(t)
	if p := r.sealer.Problems(); len(p) > 0 {
		t.Fatalf("problems after sealing its own records: %v", p)
	}
	return r
}

func wantProblem(t *testing.T, r *sealRig, what string) {
	t.Helper()
	p := r.sealer.Problems()
	if p[0] == "" {
		t.Fatalf("%s: the sealer went on sealing partition 0 (problems %v)", what, p)
	}
	if !strings.Contains(p[0], what) {
		t.Errorf("problem %q does not say %q", p[0], what)
	}
	n := r.sealer.Published()
	ls, err := r.store.Leaves(context.Background(), "consent.audit", 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, r.broker.Addr, r.auditRecords(t, 100, 1))
	r.waitLeaves(t, len(ls)+1)
	r.sealOnce(t)
	if r.sealer.Published() != n {
		t.Error("the sealer signed a checkpoint of a partition that failed closed")
	}
}

// TestSealerChecksCheckpointsPublishedAfterStart: checkpoints that reach
// the ledger after the sealer built its tree (another sealer's, or forged
// with a trusted key) are checked against the ledger's records. Before,
// only the checkpoints present at start were compared, and a fork or a
// forgery published later went unseen while the sealer went on signing.
func TestSealerChecksCheckpointsPublishedAfterStart(t *testing.T) {
	bad := [32]byte{1, 2, 3}
	t.Run("another root for a size it signed", func(t *testing.T) {
		r := sealedThree(t)
		r.publish(t, 3, bad)
		r.waitCheckpoints(t, 3, 2)
		r.sealOnce(t)
		wantProblem(t, r, "do not reproduce the checkpoint of size 3")
	})
	t.Run("a forged older size it did not sign", func(t *testing.T) {
		r := sealedThree(t)
		produce(t, r.broker.Addr, r.auditRecords(t, 3, 2))
		r.waitLeaves(t, 5)
		r.sealOnce(t)
		r.publish(t, 2, bad)
		r.waitCheckpoints(t, 2, 1)
		r.sealOnce(t)
		wantProblem(t, r, "do not reproduce the checkpoint of size 2")
	})
	t.Run("a forged size ahead of the ledger", func(t *testing.T) {
		r := sealedThree(t)
		r.publish(t, 5, bad)
		r.waitCheckpoints(t, 5, 1)
		r.sealOnce(t)
		if p := r.sealer.Problems(); len(p) > 0 {
			t.Fatalf("a checkpoint beyond the ledger's records failed the partition before the records came: %v", p)
		}
		produce(t, r.broker.Addr, r.auditRecords(t, 3, 2))
		r.waitLeaves(t, 5)
		r.sealOnce(t)
		wantProblem(t, r, "do not reproduce the checkpoint of size 5")
	})
	t.Run("another base", func(t *testing.T) {
		r := sealedThree(t)
		msg, err := seal.Sign(r.signer, seal.Checkpoint{Topic: "consent.audit", Partition: 0, Base: 1, Size: 2, Root: bad})
		if err != nil {
			t.Fatal(err)
		}
		produce(t, r.broker.Addr, []kafka.Message{{Topic: "consent.audit.checkpoints", Key: []byte(seal.Origin("consent.audit", 0)), Value: msg}})
		r.waitCheckpoints(t, 2, 1)
		r.sealOnce(t)
		wantProblem(t, r, "has base 1")
	})
	t.Run("after the queue overflowed", func(t *testing.T) {
		r := sealedThree(t)
		r.publish(t, 2, bad)
		r.waitCheckpoints(t, 2, 1)
		// As if more checkpoints had come than the sealer queues: it reads
		// the partition's checkpoints from the ledger again.
		r.sealer.qmu.Lock()
		r.sealer.queue, r.sealer.overflow = nil, true
		r.sealer.qmu.Unlock()
		r.sealOnce(t)
		wantProblem(t, r, "do not reproduce the checkpoint of size 2")
	})
	t.Run("sound checkpoints of another sealer", func(t *testing.T) {
		r := sealedThree(t)
		r.publish(t, 2, r.rootOf(t, 2))
		r.publish(t, 5, r.rootOf(t, 5)) // ahead of the ledger
		r.waitCheckpoints(t, 5, 1)
		r.waitCheckpoints(t, 2, 1)
		r.sealOnce(t)
		produce(t, r.broker.Addr, r.auditRecords(t, 3, 3))
		r.waitLeaves(t, 6)
		r.sealOnce(t)
		r.publish(t, 4, r.rootOf(t, 4))
		r.publish(t, 1, r.rootOf(t, 1))
		r.waitCheckpoints(t, 1, 1)
		r.sealOnce(t)
		if p := r.sealer.Problems(); len(p) > 0 {
			t.Fatalf("sound checkpoints failed the partition: %v", p)
		}
		r.waitCheckpoints(t, 6, 1)
		if rep := r.verifyTopic(t, 6); !rep.OK() || rep.Sealed != 6 {
			t.Fatalf("verify:\n%s", rep)
		}
	})
}

// TestSealerStartUpCheckFindsAFork: two checkpoints of one size with
// different roots in the ledger when the sealer starts fail the partition
// closed, and checkpoints of every size the records reproduce do not.
func TestSealerStartUpCheckFindsAFork(t *testing.T) {
	for _, fork := range []bool{false, true} {
		t.Run(fmt.Sprintf("fork=%v", fork), func(t *testing.T) {
			r := newSealRig(t, sealRigOptions{manual: true})
			r.consume(t, DefaultConfig().Topics())
			produce(t, r.broker.Addr, r.auditRecords(t, 0, 5))
			for n := 1; n <= 4; n++ {
				r.publish(t, int64(n), r.rootOf(t, n))
			}
			if fork {
				r.publish(t, 2, [32]byte{9})
			}
			r.waitLeaves(t, 5)
			want := 1
			if fork {
				want = 2
			}
			r.waitCheckpoints(t, 2, want)
			r.waitCheckpoints(t, 4, 1)
			r.sealOnce(t)
			if fork {
				wantProblem(t, r, "do not reproduce the checkpoint of size 2")
				return
			}
			if p := r.sealer.Problems(); len(p) > 0 {
				t.Fatalf("problems: %v", p)
			}
			if r.sealer.Published() != 1 {
				t.Fatalf("published %d checkpoints, want the one of size 5", r.sealer.Published())
			}
		})
	}
}

// TestFreshLedgerReadsPublishedCheckpointsBeforeSigning: a new ledger (an
// empty database) reads the checkpoints topic from its start like every
// topic. Before, its sealer signed as soon as audit records were in the
// ledger, before the checkpoints another sealer had published were: a
// checkpoint it could not check, and that could contradict them. Now it
// signs nothing until the ledger has read the checkpoints topic up to where
// it ended when the sealer started, and checks those first.
func TestFreshLedgerReadsPublishedCheckpointsBeforeSigning(t *testing.T) {
	for _, sound := range []bool{true, false} {
		t.Run(fmt.Sprintf("sound=%v", sound), func(t *testing.T) {
			first := newSealRig(t, sealRigOptions{manual: true})
			produce(t, first.broker.Addr, first.auditRecords(t, 0, 3))
			if sound {
				first.consume(t, DefaultConfig().Topics())
				first.waitLeaves(t, 3)
				first.sealOnce(t)
				if first.sealer.Published() != 1 {
					t.Fatal("the first sealer published nothing")
				}
			} else {
				first.publish(t, 3, [32]byte{7}) // not the records' root
			}

			fresh := newSealRig(t, sealRigOptions{broker: first.broker, from: first, manual: true})
			// The audit records reach the new ledger before the old
			// checkpoint does.
			stop := fresh.consume(t, []Topic{{"consent.audit", ledger.HoldsAudit}})
			fresh.waitLeaves(t, 3)
			if err := fresh.sealer.SealOnce(context.Background()); err != nil {
				t.Fatalf("SealOnce: %v", err)
			}
			if n := fresh.sealer.Published(); n != 0 {
				t.Fatalf("the new ledger's sealer signed %d checkpoints before the ledger read the published one", n)
			}
			stop()
			fresh.consume(t, DefaultConfig().Topics())
			fresh.waitCheckpoints(t, 3, 1)
			fresh.sealOnce(t)
			if !sound {
				wantProblem(t, fresh, "do not reproduce the checkpoint of size 3")
				return
			}
			if p := fresh.sealer.Problems(); len(p) > 0 || fresh.sealer.Published() != 0 {
				t.Fatalf("after reading the sound checkpoint of size 3: problems %v, published %d (want none: 3 is sealed)", p, fresh.sealer.Published())
			}
			produce(t, first.broker.Addr, first.auditRecords(t, 3, 2))
			fresh.waitLeaves(t, 5)
			fresh.sealOnce(t)
			fresh.waitCheckpoints(t, 5, 1)
			if rep := fresh.verifyTopic(t, 5); !rep.OK() || rep.Sealed != 5 || rep.Valid != 2 {
				t.Fatalf("verify:\n%s", rep)
			}
		})
	}
}

// TestSealerDoesNotSignWithoutTheCheckpointsTopic: when the checkpoints
// topic's offsets cannot be read, the sealer cannot know the ledger has
// read the checkpoints already published, and signs nothing.
func TestSealerDoesNotSignWithoutTheCheckpointsTopic(t *testing.T) {
	r := newSealRig(t, sealRigOptions{manual: true})
	r.sealer.Offsets = &topicread.Client{Brokers: []string{"127.0.0.1:1"}, Timeout: time.Second}
	r.consume(t, DefaultConfig().Topics())
	produce(t, r.broker.Addr, r.auditRecords(t, 0, 2))
	r.waitLeaves(t, 2)
	err := r.sealer.SealOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "LEDGER_CHECKPOINTS_TOPIC") {
		t.Fatalf("SealOnce = %v, want an error that says what to check", err)
	}
	if n := r.sealer.Published(); n != 0 {
		t.Fatalf("published %d checkpoints", n)
	}
}

// flakyLedger fails every n-th read of the sealer, as a database that drops
// the connection would.
type flakyLedger struct {
	*ledger.Store
	n, calls int
}

func (f *flakyLedger) fail() error {
	f.calls++
	if f.calls%f.n == 0 {
		return errors.New("injected: connection lost")
	}
	return nil
}

func (f *flakyLedger) Leaves(ctx context.Context, topic string, partition int32, from int64, limit int) ([]ledger.Leaf, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Leaves(ctx, topic, partition, from, limit)
}

func (f *flakyLedger) CheckpointsOfBase(ctx context.Context, topic string, partition int32, base, afterSize int64, afterRoot [32]byte, limit int) ([]ledger.Checkpoint, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.CheckpointsOfBase(ctx, topic, partition, base, afterSize, afterRoot, limit)
}

// TestSealerChecksEveryCheckpointDespiteFailedReads: reads that fail half
// way (the tree grown, a page of checkpoints read) leave no checkpoint
// unchecked: with one checkpoint per page and every n-th read failing, the
// sealer finds the forged one of two of a size before it signs. (With
// every other read failing no round gets past its second read: n starts
// at 3.) A sealer that took a size as checked once it had checked one
// checkpoint of it skipped the other after a failed read.
func TestSealerChecksEveryCheckpointDespiteFailedReads(t *testing.T) {
	defer func(n int) { checkpointsPage = n }(checkpointsPage)
	checkpointsPage = 1
	r := newSealRig(t, sealRigOptions{manual: true})
	r.consume(t, DefaultConfig().Topics())
	produce(t, r.broker.Addr, r.auditRecords(t, 0, 6))
	sound := r.rootOf(t, 3)
	forged := sound
	forged[0] ^= 0xff // on either side of the sound root, by the bytes
	for n := 1; n <= 5; n++ {
		r.publish(t, int64(n), r.rootOf(t, n))
	}
	r.publish(t, 3, forged)
	r.waitLeaves(t, 6)
	r.waitCheckpoints(t, 3, 2)
	r.waitCheckpoints(t, 5, 1)
	for n := 3; n <= 8; n++ {
		t.Run(fmt.Sprint("every ", n), func(t *testing.T) {
			r.sealer = &Sealer{Ledger: &flakyLedger{Store: r.store, n: n}, Signer: r.signer, Writer: r.sealer.Writer, AuditTopic: "consent.audit",
				CheckpointsTopic: "consent.audit.checkpoints", Offsets: r.sealer.Offsets, Interval: time.Second, Log: r.log}
			for round := 0; round < 100 && len(r.sealer.Problems()) == 0; round++ {
				_ = r.sealer.SealOnce(context.Background())
			}
			if p := r.sealer.Problems(); !strings.Contains(p[0], "do not reproduce the checkpoint of size 3") {
				t.Fatalf("problems %v, want the forged checkpoint of size 3", p)
			}
			if n := r.sealer.Published(); n != 0 {
				t.Fatalf("published %d checkpoints with a fork in the ledger", n)
			}
		})
	}
}
