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

// An ERASE that is delivered again (consent-sync died after the first
// apply, before its offsets were committed) writes a second erasure marker
// for the same change. The ring takes it as a new erasure and kills every
// key below it, also the key the enforcer made after the first marker for
// the grant the subject gave after its erasure: the subject's consented
// data, encrypted after the erasure, becomes unreadable, although no new
// erasure happened. (The marker carries the change id, so the ring could
// tell a repeated mark from a new one.)
func TestReviewShredRedeliveredEraseKillsTheKeyOfALaterGrant(t *testing.T) {
	f := newFixture(t)
	b := brokertest.Start(t, brokertest.Options{Partitions: 3, Topics: []string{shred.DefaultTopic}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := func(kek shred.KEK) shred.RingConfig {
		return shred.RingConfig{Brokers: []string{b.Addr}, Dialer: b.Dialer(), Transport: b.Security.Transport("review"),
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
	enforcerRing := open(kek)
	s := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: syncRing}, f.codec, f.store)

	const subject = "cust-regrant-1"
	batch := []kafka.Message{
		f.msg(0, pchange("e1", subject, "", consent.ActionErase, 20)),
		f.msg(1, pchange("g2", subject, "marketing", consent.ActionGrant, 30)),
	}
	if _, err := s.Process(ctx, batch); err != nil {
		t.Fatal(err)
	}
	states, err := f.store.Lookup(ctx, []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	if !states[subject].Check("marketing", t0.Add(time.Minute)).Allowed {
		t.Fatal("the grant after the erasure does not allow marketing")
	}
	// The enforcer has read the marker and, the subject having granted
	// after its erasure, gets a new key for its new events.
	if err := enforcerRing.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	// As the enforcer asks: knowing the erasure its consent state holds.
	states, err = f.store.Lookup(ctx, []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := enforcerRing.KeysKnowing(ctx, map[string]shred.Erasure{subject: {At: states[subject].ErasedAt, ChangeID: states[subject].ErasedBy}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ks[subject].EncryptString("consented@example.com", false)
	if err != nil {
		t.Fatal(err)
	}

	// consent-sync restarts before it committed: the batch is delivered
	// again; the ERASE still owes its notice and marks again.
	if _, err := s.Process(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := s.KeyErasures.Load(); n < 2 {
		t.Skipf("the redelivered ERASE did not mark again (KeyErasures %d): nothing to show", n)
	}
	reader := open(kek)
	got, err := reader.DecryptString(ctx, c)
	if errors.Is(err, shred.ErrErased) {
		t.Fatalf("the redelivery of erasure e1 destroyed the key made after e1 was marked, for the subject's later grant: " +
			"its consented data encrypted after the erasure is unreadable, with no new erasure")
	}
	if err != nil || got != "consented@example.com" {
		t.Fatalf("decrypt: %q, %v", got, err)
	}
}
