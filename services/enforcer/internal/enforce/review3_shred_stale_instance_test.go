package enforce

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/shred"
)

const review3TwoPurposePolicy = `
purposes:
  - id: marketing
  - id: support
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement]
    treatments:
      - category: user.contact.email
        action: encrypt
  - topic: compliant.support
    purposes: [support]
    schemas: [consentgate.events.EmailEngagement]
    treatments:
      - category: user.contact.email
        action: encrypt
`

// review3Snapshot answers every lookup with the consent state the real
// store held when it was taken: an enforcer instance whose cache entry of
// the subject predates the ERASE (its invalidation not received yet).
type review3Snapshot struct{ st map[string]*consent.State }

func (s review3Snapshot) Lookup(_ context.Context, _ []string) (map[string]*consent.State, error) {
	return s.st, nil
}

// Two enforcer instances, a late ERASE e1 (captured before a support
// grant that was applied first). Instance A decides on the fresh state
// (erased by e1, support granted after it) and makes key K(e1); marker e1
// is not written yet. Instance B decides on its cached state from before
// e1, in which the marketing grant that e1 erased is still in force: it
// publishes the subject's email to compliant.marketing, encrypted under
// the key the ring hands a caller knowing no erasure, which is K(e1).
// Marker e1 spares K(e1), so the marketing record decided on the
// pre-erasure grant stays decryptable after the erasure, for good: the
// "window" of the README loses data only if its key dies.
func TestReview3ShredStaleInstanceEncryptsUnderAKeyTheErasureSpares(t *testing.T) {
	f := newFixtureWith(t, review3TwoPurposePolicy)
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
		r, err := shred.OpenRing(ctx, shred.RingConfig{Brokers: []string{b.Addr}, Dialer: b.Dialer(), Transport: b.Security.Transport("review3"),
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
	ringA, ringB, syncRing := open(kek), open(kek), open(nil)

	const subject = "s-stale-instance-1"
	now := time.Now()
	apply := func(c consent.Change) {
		t.Helper()
		c.SubjectID, c.LegalBasis, c.Source, c.NoticeVersion = subject, consent.BasisConsent, "test", "1"
		if _, err := f.store.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	apply(consent.Change{ChangeID: "g-marketing", Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: now.Add(-time.Minute)})
	apply(consent.Change{ChangeID: "g-support", Purpose: "support", Action: consent.ActionGrant, CapturedAt: now.Add(-10 * time.Second)})
	stale, err := f.store.Lookup(ctx, []string{subject}) // B's cache entry
	if err != nil {
		t.Fatal(err)
	}
	e1 := shred.Erasure{At: now.Add(-30 * time.Second).UTC().Truncate(time.Millisecond), ChangeID: "erase-1"}
	apply(consent.Change{ChangeID: e1.ChangeID, Action: consent.ActionErase, CapturedAt: e1.At})

	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	opts := func(r *shred.Ring) Options {
		return Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: reviewRingKeys{r}}
	}
	a := New(opts(ringA), f.codec, f.store, f.e.policy)
	if _, err := a.Process(ctx, []kafka.Message{f.email(t, 10, "ev-a", subject)}); err != nil {
		t.Fatal(err)
	}
	if err := ringB.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	bEnf := New(opts(ringB), f.codec, review3Snapshot{stale}, f.e.policy)
	out, err := bEnf.Process(ctx, []kafka.Message{f.email(t, 11, "ev-b", subject)})
	if errors.Is(err, shred.ErrStaleErasure) {
		return // refused: nothing under a key the erasure spares
	}
	if err != nil {
		t.Fatal(err)
	}
	var c string
	for _, m := range out {
		if m.Topic != "compliant.marketing" {
			continue
		}
		rec, err := f.codec.Decode(ctx, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		c, _ = avrocodec.StringField(rec.Value, "email")
	}
	if !strings.HasPrefix(c, shred.StringPrefix) {
		return // B published no encrypted marketing email: nothing to leak
	}

	// consent-sync now marks e1.
	if err := syncRing.Erase(ctx, subject, e1); err != nil {
		t.Fatal(err)
	}
	reader := open(kek)
	if got, err := reader.DecryptString(ctx, c); err == nil {
		t.Fatalf("the marketing record decided on the grant erasure e1 deleted decrypts after marker e1 (%d bytes): "+
			"it was encrypted under the key made knowing e1, which the marker spares", len(got))
	} else if !errors.Is(err, shred.ErrErased) {
		t.Fatal(err)
	}
}
