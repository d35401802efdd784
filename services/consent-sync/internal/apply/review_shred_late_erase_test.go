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

// An ERASE that arrives late, captured before the erasure already stored
// (another change id), is not applied but owes a late_change notice, and
// consent-sync marks the subject erased again. The new marker kills the
// key the enforcer made for the grant given after the stored erasure: data
// the subject consented to after both erasures becomes unreadable, by an
// erasure older than that consent.
func TestReviewShredLateOlderEraseKillsTheKeyOfALaterGrant(t *testing.T) {
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

	// A late ERASE, captured before e1, arrives.
	if _, err := s.Process(ctx, []kafka.Message{f.msg(2, pchange("e0", subject, "", consent.ActionErase, 10))}); err != nil {
		t.Fatal(err)
	}
	if n := s.KeyErasures.Load(); n < 2 {
		t.Skipf("the late ERASE did not mark (KeyErasures %d): nothing to show", n)
	}
	reader := open(kek)
	got, err := reader.DecryptString(ctx, c)
	if errors.Is(err, shred.ErrErased) {
		t.Fatalf("a late ERASE captured before the stored erasure destroyed the key made for the subject's later grant: " +
			"data consented to after every erasure is unreadable")
	}
	if err != nil || got != "consented@example.com" {
		t.Fatalf("decrypt: %q, %v", got, err)
	}
}
