package enforce

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
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/shred"
)

// The end state of TestReview2ShredLateEraseDuringRebuildStallsForEver
// (consent-sync): the subject's consent state is erased by e1 and granted
// since; the keys topic's newest marker of the subject is e0 (a late,
// older ERASE marked while Redis was being rebuilt). Nothing ever changes
// that but a new erasure: no change id the state can hold matches e0. Every batch holding
// one event of the subject fails with ErrStaleErasure, and the batch is
// retried as a whole: the events of every other subject of the partition
// stall behind it, for ever.
func TestReview2ShredOneStaleSubjectStallsThePartitionForEver(t *testing.T) {
	f := newFixtureWith(t, reviewEncryptPolicy)
	b := brokertest.Start(t, brokertest.Options{Partitions: 3, Topics: []string{shred.DefaultTopic}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	kek, err := shred.ParseLocalKEK([]byte(base64.StdEncoding.EncodeToString(raw)))
	if err != nil {
		t.Fatal(err)
	}
	open := func(k shred.KEK) *shred.Ring {
		r, err := shred.OpenRing(ctx, shred.RingConfig{Brokers: []string{b.Addr}, Dialer: b.Dialer(), Transport: b.Security.Transport("review2"),
			Topic: shred.DefaultTopic, KEK: k, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		if err := r.WaitCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	syncRing := open(nil)

	const stuck, other = "s-stuck-1", "s-other-1"
	now := time.Now()
	for _, c := range []consent.Change{
		{ChangeID: "e1", SubjectID: stuck, Action: consent.ActionErase, CapturedAt: now.Add(-2 * time.Minute)},
		{ChangeID: "g2", SubjectID: stuck, Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: now.Add(-time.Minute)},
		{ChangeID: "g3", SubjectID: other, Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: now.Add(-time.Minute)},
	} {
		c.LegalBasis, c.Source, c.NoticeVersion = consent.BasisConsent, "test", "1"
		if _, err := f.store.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// e0: a late ERASE captured before e1, marked after it.
	for _, er := range []shred.Erasure{{At: now.Add(-2 * time.Minute), ChangeID: "e1"}, {At: now.Add(-3 * time.Minute), ChangeID: "e0"}} {
		if err := syncRing.Erase(ctx, stuck, er); err != nil {
			t.Fatal(err)
		}
	}

	enforcerRing := open(kek)
	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: reviewRingKeys{enforcerRing}}, f.codec, f.store, f.e.policy)
	batch := []kafka.Message{f.email(t, 10, "ev-other", other), f.email(t, 11, "ev-stuck", stuck)}
	var lastErr error
	for i := 0; i < 10; i++ {
		out, err := e.Process(ctx, batch)
		if err == nil {
			if len(byTopic(out)["compliant.marketing"]) == 0 {
				t.Fatal("the other subject's consented event was not published")
			}
			return
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	if errors.Is(lastErr, shred.ErrStaleErasure) {
		t.Fatalf("10 retries over 5 s: the batch fails every time (%v); the other subject's consented event is never published, "+
			"and only a new erasure of the subject could end it", lastErr)
	}
	t.Fatalf("Process: %v", lastErr)
}
