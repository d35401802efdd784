package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/topicread"
)

// publishOf signs a checkpoint of any audit partition with the rig's key
// and publishes it, as another sealer (or a forger holding a trusted key)
// would.
func (r *sealRig) publishOf(t *testing.T, partition int32, base, size int64, root [32]byte) {
	t.Helper()
	msg, err := seal.Sign(r.signer, seal.Checkpoint{Topic: "consent.audit", Partition: partition, Base: base, Size: size, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, r.broker.Addr, []kafka.Message{{Topic: "consent.audit.checkpoints", Key: []byte(seal.Origin("consent.audit", partition)), Value: msg}})
}

// waitCheckpointOf waits until the ledger holds a checkpoint of the
// partition of size size.
func (r *sealRig) waitCheckpointOf(t *testing.T, partition int32, size int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cps, err := r.store.Checkpoints(context.Background(), "consent.audit", partition)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cps {
			if c.Size == size {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d of partition %d in the ledger after 30s", size, partition)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReviewSealerFailsACheckpointOfRecordsNeverWritten: a checkpoint
// signed with a trusted key that covers offsets the audit topic has never
// had (the partition's end offset on the brokers is below base+size) can
// be no sealer's honest checkpoint: records are on the topic before any
// ledger reads them, and a checkpoint is signed after. Before, it only held
// the partition's signing back, for good, logged once as a warning, with
// readiness OK; a forged checkpoint of a partition that has no records at
// all was never looked at. Both are problems now (seen on two rounds, so
// that a leader's high watermark just after an election does not raise a
// false alarm), and a sound checkpoint ahead of the ledger (records on the
// topic the ledger has not read yet) still only waits.
func TestReviewSealerFailsACheckpointOfRecordsNeverWritten(t *testing.T) {
	t.Run("a huge size", func(t *testing.T) {
		r := sealedThree(t)
		r.publish(t, 1<<40, [32]byte{1})
		r.waitCheckpoints(t, 1<<40, 1)
		r.sealOnce(t)
		r.sealOnce(t)
		wantProblem(t, r, "never written")
	})
	t.Run("a partition without records", func(t *testing.T) {
		r := sealedThree(t)
		r.publishOf(t, 9, 0, 2, [32]byte{2})
		r.waitCheckpointOf(t, 9, 2)
		r.sealOnce(t)
		r.sealOnce(t)
		if p := r.sealer.Problems(); !strings.Contains(p[9], "never written") {
			t.Fatalf("problems %v: a forged checkpoint of partition 9, which holds no record, is not one", p)
		}
		if p := r.sealer.Problems(); p[0] != "" {
			t.Fatalf("partition 0 failed too: %v", p)
		}
	})
	t.Run("sound, ahead of the ledger", func(t *testing.T) {
		r := newSealRig(t, sealRigOptions{manual: true})
		stop := r.consume(t, DefaultConfig().Topics())
		produce(t, r.broker.Addr, r.auditRecords(t, 0, 3))
		r.waitLeaves(t, 3)
		r.sealOnce(t)
		stop()
		// Two more records on the topic, and another sealer's checkpoint
		// of all five, which this ledger reads before the records.
		produce(t, r.broker.Addr, r.auditRecords(t, 3, 2))
		r.publish(t, 5, r.rootOf(t, 5))
		stop = r.consume(t, []Topic{{"consent.audit.checkpoints", ledger.HoldsCheckpoints}})
		r.waitCheckpoints(t, 5, 1)
		for range 3 {
			r.sealOnce(t)
		}
		if p := r.sealer.Problems(); len(p) > 0 {
			t.Fatalf("a sound checkpoint ahead of the ledger is a problem: %v", p)
		}
		stop()
		r.consume(t, DefaultConfig().Topics())
		r.waitLeaves(t, 5)
		r.sealOnce(t)
		if p := r.sealer.Problems(); len(p) > 0 {
			t.Fatalf("problems once the records came: %v", p)
		}
	})
}

// TestReviewSealerNotReadyWhileItSignsNothing: readiness says "sealer: ok"
// only while the sealer can sign. Before, it stayed OK while the sealer
// waited, for as long as it took, for the ledger to read the checkpoints
// already published, and while the checkpoints topic's offsets could not
// be read at all (every round failing, nothing ever signed): a compliance
// tool that reported itself sealing while it sealed nothing.
func TestReviewSealerNotReadyWhileItSignsNothing(t *testing.T) {
	t.Run("offsets unreadable", func(t *testing.T) {
		r := newSealRig(t, sealRigOptions{manual: true})
		r.sealer.Offsets = &topicread.Client{Brokers: []string{"127.0.0.1:1"}, Timeout: time.Second}
		r.consume(t, DefaultConfig().Topics())
		produce(t, r.broker.Addr, r.auditRecords(t, 0, 2))
		r.waitLeaves(t, 2)
		for range 3 {
			if err := r.sealer.SealOnce(context.Background()); err == nil {
				t.Fatal("SealOnce without the checkpoints topic's offsets succeeded")
			}
		}
		if err := r.sealer.Ready(context.Background()); err == nil {
			t.Fatal("ready while every round fails and nothing is signed")
		}
	})
	t.Run("waiting for the published checkpoints", func(t *testing.T) {
		first := newSealRig(t, sealRigOptions{manual: true})
		produce(t, first.broker.Addr, first.auditRecords(t, 0, 3))
		first.publish(t, 3, first.rootOf(t, 3))
		fresh := newSealRig(t, sealRigOptions{broker: first.broker, from: first, manual: true})
		stop := fresh.consume(t, []Topic{{"consent.audit", ledger.HoldsAudit}})
		fresh.waitLeaves(t, 3)
		fresh.sealOnce(t)
		if err := fresh.sealer.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "consent.audit.checkpoints") {
			t.Fatalf("Ready = %v while the sealer waits for the ledger to read consent.audit.checkpoints", err)
		}
		stop()
		fresh.consume(t, DefaultConfig().Topics())
		fresh.waitCheckpoints(t, 3, 1)
		fresh.sealOnce(t)
		if err := fresh.sealer.Ready(context.Background()); err != nil {
			t.Fatalf("not ready once the published checkpoints are read and sound: %v", err)
		}
	})
}

// blockingLedger blocks the sealer's reads of leaves while armed, as a slow
// database (or the first round over a large ledger) does.
type blockingLedger struct {
	*ledger.Store
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (b *blockingLedger) Leaves(ctx context.Context, topic string, partition int32, from int64, limit int) ([]ledger.Leaf, error) {
	b.mu.Lock()
	armed := b.armed
	b.armed = false
	b.mu.Unlock()
	if armed {
		close(b.entered)
		<-b.release
	}
	return b.Store.Leaves(ctx, topic, partition, from, limit)
}

// TestReviewSealerStatusDoesNotWaitForARound: readiness (Ready, Problems)
// and the console (Problems) answer while a round reads the ledger. Before,
// they took the lock a round holds across every database read, so /readyz
// (2 s deadline) and the verification page hung for as long as a round
// took: at start a round reads every leaf hash of the ledger.
func TestReviewSealerStatusDoesNotWaitForARound(t *testing.T) {
	r := newSealRig(t, sealRigOptions{manual: true})
	r.consume(t, DefaultConfig().Topics())
	produce(t, r.broker.Addr, r.auditRecords(t, 0, 2))
	r.waitLeaves(t, 2)
	bl := &blockingLedger{Store: r.store, armed: true, entered: make(chan struct{}), release: make(chan struct{})}
	r.sealer.Ledger = bl
	round := make(chan error, 1)
	go func() { round <- r.sealer.SealOnce(context.Background()) }()
	<-bl.entered
	answered := make(chan struct{})
	go func() {
		_ = r.sealer.Problems()
		_ = r.sealer.Ready(context.Background())
		_ = r.sealer.Published()
		close(answered)
	}()
	// The read is released when the status answered, or after a long
	// failsafe; what is checked is which came first.
	failsafe := time.NewTimer(20 * time.Second)
	defer failsafe.Stop()
	first := "status"
	select {
	case <-answered:
	case <-failsafe.C:
		first = "the round's read"
	}
	close(bl.release)
	<-answered
	if err := <-round; err != nil {
		t.Fatal(err)
	}
	if first != "status" {
		t.Fatal("Problems, Ready and Published waited for the round's database read to end")
	}
}

// brokenPartitionLedger is a ledger one partition of which cannot be read
// (a corrupt row, a query that always fails on it): it has checkpoints,
// and reading them fails.
type brokenPartitionLedger struct {
	*ledger.Store
	broken int32
}

func (b *brokenPartitionLedger) CheckpointPartitions(ctx context.Context, topic string) ([]int32, error) {
	ps, err := b.Store.CheckpointPartitions(ctx, topic)
	return append(ps, b.broken), err
}

func (b *brokenPartitionLedger) CheckpointOfBaseAbove(ctx context.Context, topic string, partition int32, base int64) (ledger.Checkpoint, bool, error) {
	if partition == b.broken {
		return ledger.Checkpoint{}, false, errors.New("injected: this partition's rows cannot be read")
	}
	return b.Store.CheckpointOfBaseAbove(ctx, topic, partition, base)
}

// TestReviewSealerSealsHealthyPartitionsPastABrokenOne: a partition whose
// reads keep failing does not stop the others from being sealed. Before,
// the first such error ended the round before anything was published, so
// one unreadable partition stopped sealing every partition for good.
func TestReviewSealerSealsHealthyPartitionsPastABrokenOne(t *testing.T) {
	r := newSealRig(t, sealRigOptions{manual: true})
	r.consume(t, DefaultConfig().Topics())
	produce(t, r.broker.Addr, r.auditRecords(t, 0, 2))
	r.waitLeaves(t, 2)
	r.sealer.Ledger = &brokenPartitionLedger{Store: r.store, broken: 7}
	for range 2 {
		if err := r.sealer.SealOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("SealOnce = %v, want the broken partition's error", err)
		}
	}
	if n := r.sealer.Published(); n != 1 {
		t.Fatalf("published %d checkpoints, want the one of the healthy partition 0", n)
	}
	if err := r.sealer.Ready(context.Background()); err != nil {
		t.Fatalf("not ready after two failed rounds (a moment's failure): %v", err)
	}
	if err := r.sealer.SealOnce(context.Background()); err == nil {
		t.Fatal("the third round succeeded")
	}
	if err := r.sealer.Ready(context.Background()); err == nil {
		t.Fatal("ready after three failed rounds in a row")
	}
}
