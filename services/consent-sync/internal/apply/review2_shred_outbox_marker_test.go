package apply

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/shred"
)

// consent-sync marks an ERASE only while the change owes its notice
// (`if s.opts.Replay || !o.NoticeDue { continue }` comes before the mark).
// An ERASE is applied to Redis, then its marker cannot be written (the
// keys topic's brokers are unreachable): the batch is retried. The retry
// is a redelivery (o.Redelivered), but the notice outbox entry is gone by
// then: the outbox key carries a TTL (consent.NoticeMemory, 7 days of a
// keys topic that stays unreachable) and is the first candidate of a
// volatile-* maxmemory eviction. Here the key is deleted, as the expiry or
// the eviction does. The redelivered ERASE then owes no notice, is not
// marked, and is committed: the erasure never reaches the keys topic, and
// the subject's data key, and every ciphertext under it, lives on.
func TestReview2ShredEraseRetriedAfterItsOutboxEntryExpiredIsNeverMarked(t *testing.T) {
	f := newFixture(t)
	b := brokertest.Start(t, brokertest.Options{Partitions: 3, Topics: []string{shred.DefaultTopic}, DataDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := func(kek shred.KEK) shred.RingConfig {
		return shred.RingConfig{Brokers: []string{b.Addr}, Dialer: b.Dialer(), Transport: b.Security.Transport("review2"),
			Topic: shred.DefaultTopic, KEK: kek, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 2 * time.Second}
	}
	open := func(kek shred.KEK) *shred.Ring {
		r, err := shred.OpenRing(ctx, cfg(kek))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		if err := r.WaitCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	kek, err := shred.ParseLocalKEK([]byte(base64.StdEncoding.EncodeToString(raw)))
	if err != nil {
		t.Fatal(err)
	}
	syncRing := open(nil)
	enforcerRing := open(kek)
	s := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: syncRing}, f.codec, f.store)

	const subject = "cust-outbox-1"
	grant := []kafka.Message{f.msg(0, pchange("g1", subject, "marketing", consent.ActionGrant, 10))}
	if _, err := s.Process(ctx, grant); err != nil {
		t.Fatal(err)
	}
	// As the live runner does before it commits (consent-sync's advancing).
	if err := f.store.Advance(ctx, consent.BatchRanges(func(i int) (string, int, int64) {
		return grant[i].Topic, grant[i].Partition, grant[i].Offset
	}, len(grant))); err != nil {
		t.Fatal(err)
	}
	ks, err := enforcerRing.KeysKnowing(ctx, map[string]shred.Erasure{subject: {}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ks[subject].EncryptString("before-erasure@example.com", false)
	if err != nil {
		t.Fatal(err)
	}

	// The keys topic's broker is down: the ERASE is applied to Redis, but
	// its marker cannot be written; the batch fails and will be retried.
	if err := b.Proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	erase := []kafka.Message{f.msg(1, pchange("e1", subject, "", consent.ActionErase, 20))}
	ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = s.Process(ectx, erase)
	ecancel()
	if err == nil {
		t.Fatal("the ERASE was processed with the keys topic unreachable")
	}

	// Meanwhile the outbox entry is gone (its TTL, or an eviction).
	if err := f.srv.Client(t).Del(ctx, f.store.OutboxKey(subject)).Err(); err != nil {
		t.Fatal(err)
	}

	b.Restart()
	var out []kafka.Message
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err = s.Process(ctx, erase)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the retried ERASE: %v", err)
	}
	_ = out // the runner now commits the ERASE's offset

	states, err := f.store.Lookup(ctx, []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	if st := states[subject]; st == nil || st.ErasedBy != "e1" {
		t.Fatalf("the consent state does not hold the erasure e1: %+v", st)
	}
	reader := open(kek)
	got, derr := reader.DecryptString(ctx, c)
	if !errors.Is(derr, shred.ErrErased) {
		by, marked := reader.ErasedBy(subject)
		t.Fatalf("the ERASE e1 is applied and committed, but the keys topic holds no marker of it (marker %q, %v; KeyErasures %d): "+
			"ciphertext from before the erasure still decrypts (%q, %v)", by, marked, s.KeyErasures.Load(), got, derr)
	}
}
