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

const reviewEncryptPolicy = `
purposes:
  - id: marketing
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement]
    treatments:
      - category: user.contact.email
        action: encrypt
`

// reviewRingKeys is the enforcer's adapter of main.go (ringKeys).
type reviewRingKeys struct{ r *shred.Ring }

func (k reviewRingKeys) Encrypters(ctx context.Context, want map[string]shred.Erasure) (map[string]redact.Encrypter, error) {
	m, err := k.r.KeysKnowing(ctx, want)
	if err != nil {
		return nil, err
	}
	out := make(map[string]redact.Encrypter, len(m))
	for s, dk := range m {
		out[s] = dk
	}
	return out, nil
}

// eraseAfterLookup is the real consent store; right after it answers the
// batch's lookup, consent-sync applies an ERASE of the subject and writes
// its marker (what a concurrent consent-sync does between the enforcer's
// lookup and its Keys call).
type eraseAfterLookup struct {
	store   *consent.Store
	sync    *shred.Ring
	subject string
	t       *testing.T
}

func (e *eraseAfterLookup) Lookup(ctx context.Context, subjects []string) (map[string]*consent.State, error) {
	st, err := e.store.Lookup(ctx, subjects)
	if err != nil {
		return nil, err
	}
	at := time.Now()
	if _, err := e.store.Apply(ctx, consent.Change{ChangeID: "erase-1", SubjectID: e.subject, Action: consent.ActionErase,
		LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: at}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.sync.Erase(ctx, e.subject, shred.Erasure{At: at, ChangeID: "erase-1"}); err != nil {
		e.t.Fatal(err)
	}
	return st, nil
}

// README: "One window remains: an enforcer that has not yet read the
// marker (milliseconds) may still encrypt under the dead key; that data
// becomes unreadable with the rest." Not so for a subject's first key (or
// a rotation): the enforcer's consent lookup predates the erasure, the
// key it then creates lands after the marker, which does not kill it, and
// the published ciphertext stays readable after the erasure, for ever.
func TestReviewShredEventInTheErasureWindowStaysReadable(t *testing.T) {
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
		r, err := shred.OpenRing(ctx, shred.RingConfig{Brokers: []string{b.Addr}, Dialer: b.Dialer(), Transport: b.Security.Transport("review"),
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
	enforcerRing, syncRing := open(kek), open(nil)

	const subject = "s-window-1"
	f.grant(t, subject, "marketing")
	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: reviewRingKeys{enforcerRing}}, f.codec,
		&eraseAfterLookup{store: f.store, sync: syncRing, subject: subject, t: t}, f.e.policy)
	out, err := e.Process(ctx, []kafka.Message{f.email(t, 10, "e1", subject)})
	if errors.Is(err, shred.ErrStaleErasure) && len(out) == 0 {
		// Refused: nothing published under a key the erasure misses.
		// The retry decides on the erased state: nothing passes.
		e2 := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: reviewRingKeys{enforcerRing}}, f.codec, f.store, f.e.policy)
		out, err := e2.Process(ctx, []kafka.Message{f.email(t, 10, "e1", subject)})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out {
			if m.Topic == "compliant.marketing" {
				t.Fatal("the retried batch published the erased subject's event")
			}
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var pub []kafka.Message
	for _, m := range out {
		if m.Topic == "compliant.marketing" {
			pub = append(pub, m)
		}
	}
	if len(pub) != 1 {
		t.Fatalf("%d records on compliant.marketing, want 1", len(pub))
	}
	rec, err := f.codec.Decode(ctx, pub[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := avrocodec.StringField(rec.Value, "email")
	if !strings.HasPrefix(c, shred.StringPrefix) {
		t.Fatalf("email not encrypted: %q", c)
	}
	// The erasure has been applied and marked; anyone reading the keys
	// topic now (consentctl decrypt, a consumer) should find it erased.
	reader := open(kek)
	if got, err := reader.DecryptString(ctx, c); err == nil {
		t.Fatalf("the event published in the erasure window decrypts after the erasure (%q): its key was made after the marker", got)
	}
}
