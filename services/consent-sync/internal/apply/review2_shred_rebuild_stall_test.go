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

// Redis loses its data (a flush, a failover to an empty replica). While the
// replay has not yet restored the subject's erasure e1, a late ERASE e0,
// captured before e1, arrives: the store holds no tombstone, so e0 takes
// effect (o.Erased) and consent-sync writes a marker e0, after marker e1.
// The replay then restores e1 as the newer tombstone, which wins. From now
// on the consent state says "erased by e1" and the keys topic's newest
// marker says e0, for good: every KeysKnowing of the subject (which gave a
// grant after both erasures) fails with ErrStaleErasure, and the enforcer
// retries its batch for ever. The marker e0 also killed the key made for
// that grant.
func TestReview2ShredLateEraseDuringRebuildStallsForEver(t *testing.T) {
	f := newFixture(t)
	b := brokertest.Start(t, brokertest.Options{Partitions: 3, Topics: []string{shred.DefaultTopic}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := func(kek shred.KEK) shred.RingConfig {
		return shred.RingConfig{Brokers: []string{b.Addr}, Dialer: b.Dialer(), Transport: b.Security.Transport("review2"),
			Topic: shred.DefaultTopic, KEK: kek, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 5 * time.Second}
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
	s := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: syncRing}, f.codec, f.store)

	const subject = "cust-rebuild-1"
	topic := []kafka.Message{
		f.msg(0, pchange("e1", subject, "", consent.ActionErase, 20)),
		f.msg(1, pchange("g2", subject, "marketing", consent.ActionGrant, 30)),
	}
	if _, err := s.Process(ctx, topic); err != nil {
		t.Fatal(err)
	}

	// Redis loses everything; the late ERASE e0 is consumed before the
	// replay has restored e1.
	if err := f.srv.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	late := f.msg(2, pchange("e0", subject, "", consent.ActionErase, 10))
	if _, err := s.Process(ctx, []kafka.Message{late}); err != nil {
		t.Fatal(err)
	}
	topic = append(topic, late)

	// The replay of the whole topic (consent-sync's warmer) restores e1
	// and g2; e0 is older than e1 and is not applied.
	replay := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: syncRing, Replay: true}, f.codec, f.store)
	if _, err := replay.Process(ctx, topic); err != nil {
		t.Fatal(err)
	}
	markWarm(t, f.store)

	states, err := f.store.Lookup(ctx, []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	st := states[subject]
	if st == nil || !st.Check("marketing", t0.Add(time.Minute)).Allowed {
		t.Fatal("after the replay the grant g2 does not allow marketing")
	}

	enforcerRing := open(kek)
	want := map[string]shred.Erasure{subject: {At: st.ErasedAt, ChangeID: st.ErasedBy}}
	var lastErr error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, lastErr = enforcerRing.KeysKnowing(ctx, want)
		if lastErr == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	ringBy, _ := enforcerRing.ErasedBy(subject)
	if errors.Is(lastErr, shred.ErrStaleErasure) {
		t.Fatalf("the consent state is complete (replayed, warm) and its newest erasure is %q, but the keys topic's newest marker is %q: "+
			"KeysKnowing fails with ErrStaleErasure for good, and the enforcer retries the subject's batch for ever", st.ErasedBy, ringBy)
	}
	t.Fatalf("KeysKnowing: %v", lastErr)
}
