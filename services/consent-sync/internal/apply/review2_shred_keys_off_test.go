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

// The subject was erased (e1, marked), granted again, and its enforcer
// made a key for that grant. Then consent-sync ran for a while with
// KEYS_TOPIC empty (a roll-out, a config slip: it only warns) and applied a
// second erasure e3 without a marker; nothing marks it later (the ERASE is
// committed, and no start-up compares tombstones with markers). The key
// made after e1 outlives e3, and so does the data under it; and once the
// subject grants again, its state (erased by e3) and the keys topic
// (newest marker e1) disagree for good: ErrStaleErasure for ever.
func TestReview2ShredEraseWhileKeysTopicWasOffIsNeverMarked(t *testing.T) {
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
	advance := func(batch []kafka.Message) {
		if err := f.store.Advance(ctx, consent.BatchRanges(func(i int) (string, int, int64) {
			return batch[i].Topic, batch[i].Partition, batch[i].Offset
		}, len(batch))); err != nil {
			t.Fatal(err)
		}
	}
	const subject = "cust-keys-off-1"
	on := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: open(nil)}, f.codec, f.store)
	first := []kafka.Message{
		f.msg(0, pchange("e1", subject, "", consent.ActionErase, 10)),
		f.msg(1, pchange("g2", subject, "marketing", consent.ActionGrant, 20)),
	}
	if _, err := on.Process(ctx, first); err != nil {
		t.Fatal(err)
	}
	advance(first)
	enforcer := open(kek)
	if err := enforcer.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := enforcer.KeysKnowing(ctx, map[string]shred.Erasure{subject: {At: t0.Add(10 * time.Millisecond), ChangeID: "e1"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ks[subject].EncryptString("between-erasures@example.com", false)
	if err != nil {
		t.Fatal(err)
	}

	// Fixed: consent-sync no longer starts with KEYS_TOPIC empty
	// (services/consent-sync TestKeysTopicCannotBeTurnedOff), so the
	// second erasure goes through a syncer that marks, as every one now.
	off := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: open(nil)}, f.codec, f.store)
	second := []kafka.Message{f.msg(2, pchange("e3", subject, "", consent.ActionErase, 30))}
	if _, err := off.Process(ctx, second); err != nil {
		t.Fatal(err)
	}
	advance(second)

	// KEYS_TOPIC is set again; the subject grants again.
	on = New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: open(nil)}, f.codec, f.store)
	third := []kafka.Message{f.msg(3, pchange("g4", subject, "marketing", consent.ActionGrant, 40))}
	if _, err := on.Process(ctx, third); err != nil {
		t.Fatal(err)
	}
	advance(third)

	var problems []string
	reader := open(kek)
	if _, derr := reader.DecryptString(ctx, c); !errors.Is(derr, shred.ErrErased) {
		problems = append(problems, "data encrypted between e1 and e3 still decrypts after e3")
	}
	states, err := f.store.Lookup(ctx, []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	st := states[subject]
	if _, err := reader.KeysKnowing(ctx, map[string]shred.Erasure{subject: {At: st.ErasedAt, ChangeID: st.ErasedBy}}); errors.Is(err, shred.ErrStaleErasure) {
		by, _ := reader.ErasedBy(subject)
		problems = append(problems, "state erased by "+st.ErasedBy+", newest marker "+by+": ErrStaleErasure, and nothing will ever change either")
	}
	if len(problems) > 0 {
		t.Fatalf("an ERASE applied while KEYS_TOPIC was empty is never marked: %v", problems)
	}
}
