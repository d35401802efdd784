package enforce

import (
	"context"
	"crypto/rand"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/schemas"
)

const keysPolicy = `
purposes:
  - id: marketing
  - id: analytics
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    treatments:
      - category: user.id
        action: encrypt               # randomised: the Kafka key must still be stable
      - category: user.contact.email
        action: encrypt
        encryption: deterministic
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.contact.email
        action: encrypt
    default_treatment: remove
  - topic: compliant.plain
    purposes: [analytics]
`

// memKeys is a KeySource of real shred data keys held in memory (the ring
// is tested against a broker in pkg/shred); fail makes it unavailable,
// asked records the subjects asked for.
type memKeys struct {
	mu    sync.Mutex
	keys  map[string]*shred.DataKey
	fail  error
	asked [][]string
	// markers are the erasure markers of the keys topic, by subject.
	markers map[string]shred.Erasure
}

// Encrypters follows shred.Ring.KeysKnowing: a subject whose marker the
// caller's state does not know gets no key (shred.ErrStaleErasure).
func (m *memKeys) Encrypters(_ context.Context, want map[string]shred.Erasure) (map[string]redact.Encrypter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	subjects := make([]string, 0, len(want))
	for s := range want {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	m.asked = append(m.asked, subjects)
	if m.fail != nil {
		return nil, m.fail
	}
	for s, known := range want {
		if c, ok := m.markers[s]; ok && known.Before(c) {
			return nil, shred.ErrStaleErasure
		}
	}
	out := map[string]redact.Encrypter{}
	for _, s := range subjects {
		k, ok := m.keys[s]
		if !ok {
			var id [16]byte
			dek := make([]byte, 32)
			rand.Read(id[:])
			rand.Read(dek)
			var err error
			if k, err = shred.NewDataKey(s, id, 1, time.Now(), dek); err != nil {
				return nil, err
			}
			m.keys[s] = k
		}
		out[s] = k
	}
	return out, nil
}

// Process asks for the data keys of exactly the subjects an output of
// theirs encrypts, encrypts on passed and redacted outputs alike, keys a
// subject's records by the deterministic form of its encrypted subject id
// (one partition per subject, no subject id in clear), gives an erased
// subject no key (its fields to encrypt removed), and fails the whole
// batch, writing nothing, when the keys cannot be had.
func TestProcessEncryptsUnderTheSubjectsKey(t *testing.T) {
	ctx := context.Background()
	pol, err := policy.Parse([]byte(keysPolicy), "keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	keys := &memKeys{keys: map[string]*shred.DataKey{}}
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: keys}, codec, store, pol)
	at := time.Now().Add(-time.Hour)
	apply := func(c consent.Change) {
		t.Helper()
		c.Source, c.NoticeVersion, c.LegalBasis = "test", "1", consent.BasisConsent
		if _, err := store.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	apply(consent.Change{ChangeID: "g1", SubjectID: "granted", Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: at})
	apply(consent.Change{ChangeID: "g2", SubjectID: "erased", Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: at})
	apply(consent.Change{ChangeID: "x2", SubjectID: "erased", Action: consent.ActionErase, CapturedAt: at.Add(time.Minute)})
	email := func(id, subject string) kafka.Message {
		b, err := codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
			"event_id": id, "subject_id": subject, "occurred_at": time.Now(), "email": subject + "@mail.example",
			"campaign_id": "c", "message_id": "m", "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil})
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: "customer.events", Key: []byte(subject), Value: b}
	}
	batch := []kafka.Message{email("e1", "granted"), email("e2", "granted"), email("e3", "erased"), email("e4", "unknown")}
	out, err := e.Process(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys.asked[0], ","); got != "granted,unknown" {
		t.Fatalf("keys asked for %q, want granted,unknown (the erased subject gets none)", got)
	}
	var marketingKeys []string
	for _, m := range out {
		if m.Topic == "consent.audit" {
			continue
		}
		rec, err := codec.Decode(ctx, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := avrocodec.StringField(rec.Value, "subject_id")
		mail, _ := avrocodec.StringField(rec.Value, "email")
		id, _ := headerOf(m, HeaderEventID)
		switch m.Topic {
		case "compliant.marketing":
			if !shred.IsCiphertext(subject) || !shred.IsCiphertext(mail) || strings.Contains(string(m.Key), "granted") {
				t.Errorf("%s on marketing: subject %q, email %q, key %q", id, subject, mail, m.Key)
			}
			marketingKeys = append(marketingKeys, string(m.Key))
			if d, err := keys.keys["granted"].DecryptString(mail); err != nil || d != "granted@mail.example" {
				t.Errorf("%s: email decrypts to %q, %v", id, d, err)
			}
		case "compliant.analytics":
			switch id {
			case "e3":
				if mail != "" {
					t.Errorf("the erased subject's redacted email = %q, want removed", mail)
				}
			default:
				if !shred.IsCiphertext(mail) {
					t.Errorf("%s on analytics: email %q not encrypted", id, mail)
				}
			}
		}
		if strings.Contains(string(m.Value), "@mail.example") {
			t.Errorf("%s on %s carries an e-mail address in clear", id, m.Topic)
		}
	}
	if len(marketingKeys) != 2 || marketingKeys[0] != marketingKeys[1] || !shred.IsCiphertext(marketingKeys[0]) {
		t.Fatalf("marketing records' Kafka keys = %q: want one stable, encrypted key for the subject", marketingKeys)
	}

	// The key source down: nothing written, the batch is to be retried.
	keys.fail = errors.New("keys topic unreachable")
	if out, err := e.Process(ctx, batch); err == nil || len(out) != 0 {
		t.Fatalf("Process with the keys unavailable = %d records, %v; want an error and nothing", len(out), err)
	}
	// A batch no output of which encrypts does not ask.
	n := len(keys.asked)
	if _, err := e.Process(ctx, []kafka.Message{email("e5", "erased")}); err != nil {
		t.Fatal(err)
	}
	if len(keys.asked) != n {
		t.Fatalf("keys asked for a batch that encrypts nothing: %v", keys.asked[n:])
	}
}

// A consent state that knows of no erasure while the keys topic holds one
// for the subject is older than the erasure (a stale cache entry): the
// batch fails (retried once the state catches up) rather than give the
// subject a key made after the marker, which the erasure would not reach.
func TestProcessRefusesAKeyOnConsentOlderThanTheErasure(t *testing.T) {
	ctx := context.Background()
	pol, err := policy.Parse([]byte(keysPolicy), "keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	keys := &memKeys{keys: map[string]*shred.DataKey{}, markers: map[string]shred.Erasure{"stale": {At: time.Now().Add(-time.Hour).Add(time.Minute), ChangeID: "erase-1"}}}
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: keys}, codec, store, pol)
	at := time.Now().Add(-time.Hour)
	// Redis still holds the grant: the ERASE is not applied there yet
	// (as a stale cache entry would show it).
	if _, err := store.Apply(ctx, consent.Change{ChangeID: "g1", SubjectID: "stale", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: at}); err != nil {
		t.Fatal(err)
	}
	b, err := codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
		"event_id": "e1", "subject_id": "stale", "occurred_at": time.Now(), "email": "stale@mail.example",
		"campaign_id": "c", "message_id": "m", "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil})
	if err != nil {
		t.Fatal(err)
	}
	batch := []kafka.Message{{Topic: "customer.events", Key: []byte("stale"), Value: b}}
	if out, err := e.Process(ctx, batch); !errors.Is(err, shred.ErrStaleErasure) || len(out) != 0 {
		t.Fatalf("Process on consent older than the erasure = %d records, %v; want ErrStaleErasure and nothing", len(out), err)
	}
	if _, made := keys.keys["stale"]; made {
		t.Fatal("a key was made for a subject erased in the keys topic")
	}
	// Once the state knows the erasure, the event is decided (dropped on
	// marketing, redacted without a key on analytics).
	if _, err := store.Apply(ctx, consent.Change{ChangeID: "erase-1", SubjectID: "stale", Action: consent.ActionErase,
		Source: "test", NoticeVersion: "1", CapturedAt: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	out, err := e.Process(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out {
		if m.Topic == "compliant.marketing" {
			t.Fatal("an erased subject's event passed")
		}
	}
	if _, made := keys.keys["stale"]; made {
		t.Fatal("a key was made for the erased subject")
	}
}
