package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/stream"
)

// shredOutput is one record of a purpose stream, with the ciphertexts of
// its encrypted fields.
type shredOutput struct {
	eventID, email, ip string
	value              map[string]any
}

func (p *pipeline) shredOutputs(t *testing.T, topic string, want int) map[string]shredOutput {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := map[string]shredOutput{}
		for _, m := range p.broker.ReadAll(t, topic, 300*time.Millisecond, 10*time.Second) {
			id, _ := stream.Header(m, "consentgate.event_id")
			rec, err := p.codec.Decode(context.Background(), m.Value)
			if err != nil {
				t.Fatalf("%s holds an undecodable record: %v", topic, err)
			}
			o := shredOutput{eventID: id, value: rec.Value}
			o.email, _ = avrocodec.StringField(rec.Value, "email")
			if u, ok := rec.Value["ip_address"].(map[string]any); ok {
				o.ip, _ = u["string"].(string)
			}
			out[id] = o
		}
		if len(out) >= want || time.Now().After(deadline) {
			if len(out) < want {
				t.Fatalf("%s: %d records within 60s, want %d", topic, len(out), want)
			}
			return out
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// keyRing opens a reader's ring on the keys topic with the KEK.
func (p *pipeline) keyRing(t *testing.T, kekFile string) *shred.Ring {
	t.Helper()
	kek, err := shred.LoadLocalKEK(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := shred.OpenRing(ctx, shred.RingConfig{Brokers: p.stack.Brokers(), Topic: "consent.keys", KEK: kek,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func decrypts(t *testing.T, r *shred.Ring, c, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := r.DecryptString(ctx, c)
	if err != nil || got != want {
		t.Fatalf("decrypt = %q, %v; want %q", got, err, want)
	}
}

func erasedWithin(t *testing.T, r *shred.Ring, c string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := r.DecryptString(ctx, c)
		cancel()
		if errors.Is(err, shred.ErrErased) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not erased after %s: %v", within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeKEK(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestErasureShredsEncryptedFieldsEverywhere is issue 15's proof: the
// enforcer encrypts the policy's fields under each subject's data key on
// every output (passed and redacted); an ERASE makes consent-sync destroy
// the subject's keys, after which none of the subject's encrypted fields
// in any downstream topic decrypts, while other subjects' still do; the
// keys survive restarts of every service and a Redis flush; an erased
// subject's later events carry no ciphertext; and consentctl decrypt
// shows the difference.
func TestErasureShredsEncryptedFieldsEverywhere(t *testing.T) {
	kekFile := writeKEK(t)
	outputs := []string{"compliant.marketing", "compliant.analytics", "consent.keys"}
	p := startPipelineWith(t, "testdata/shred_policy.yaml", outputs, "CONSENT_KEK_FILE="+kekFile)
	// The ledger records the keys' creation and destruction.
	ledgerDSN := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	led := proctest.Start(t, "ledger", proctest.Build(t, "services/ledger"), []string{"KAFKA_BROKERS=" + p.broker.Addr,
		"LEDGER_DSN=" + ledgerDSN, "LEDGER_LINGER=20ms", "LEDGER_REFRESH=300ms"})
	if err := led.WaitFor(`"msg":"consuming"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	grant := func(id, subject string) kafka.Message {
		return p.change(t, consent.Change{ChangeID: id, SubjectID: subject, Purpose: "marketing", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "1", CapturedAt: now})
	}
	p.produce(t, grant("g-a", "cust-a"), grant("g-b", "cust-b"))
	p.waitConsent(t, "cust-a", "marketing", consent.StatusGranted)
	p.waitConsent(t, "cust-b", "marketing", consent.StatusGranted)
	p.produce(t, p.email(t, "e1", "cust-a"), p.email(t, "e2", "cust-b"), p.email(t, "e3", "cust-a"))

	mk := p.shredOutputs(t, "compliant.marketing", 3)
	an := p.shredOutputs(t, "compliant.analytics", 3)
	ring := p.keyRing(t, kekFile)
	for _, id := range []string{"e1", "e2", "e3"} {
		subject := map[string]string{"e1": "cust-a", "e2": "cust-b", "e3": "cust-a"}[id]
		for name, o := range map[string]shredOutput{"marketing": mk[id], "analytics": an[id]} {
			if !shred.IsCiphertext(o.email) {
				t.Fatalf("%s %s: email is not ciphertext: %q", name, id, o.email)
			}
			decrypts(t, ring, o.email, subject+"@mail.example")
		}
		if !shred.IsCiphertext(mk[id].ip) {
			t.Fatalf("marketing %s: ip_address is not ciphertext: %q", id, mk[id].ip)
		}
		decrypts(t, ring, mk[id].ip, "198.51.100.7")
		if an[id].value["ip_address"] != nil {
			t.Fatalf("analytics %s: ip_address kept (%v), the default treatment removes it", id, an[id].value["ip_address"])
		}
	}
	if mk["e1"].email != mk["e3"].email {
		t.Fatal("deterministic encryption: the same e-mail of the same subject gave different ciphertext")
	}
	if mk["e1"].ip == mk["e3"].ip || an["e1"].email == an["e3"].email {
		t.Fatal("randomised encryption gave equal ciphertext twice")
	}
	hb, err := shred.ParseString(mk["e2"].email)
	if err != nil {
		t.Fatal(err)
	}

	// The erasure: consent-sync marks cust-a erased and tombstones its key.
	p.produce(t, p.change(t, consent.Change{ChangeID: "erase-a", SubjectID: "cust-a", Action: consent.ActionErase,
		Source: "dsar-portal", NoticeVersion: "1", CapturedAt: now.Add(time.Second)}))
	erasedWithin(t, ring, mk["e1"].email, 30*time.Second)
	decrypts(t, ring, mk["e2"].email, "cust-b@mail.example")

	// Restart every service on a flushed Redis: the keys are in the topic.
	for _, proc := range []*proctest.Proc{p.enforce, p.sync} {
		if err := proc.Stop(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.redisClient(t).FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	p.sync = proctest.Start(t, "consent-sync", proctest.Build(t, "services/consent-sync"), p.env)
	if err := p.sync.WaitFor(`"msg":"syncing consent"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	p.enforce = proctest.Start(t, "enforcer", proctest.Build(t, "services/enforcer"), p.env)
	if err := p.enforce.WaitFor(`"msg":"enforcing"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	p.waitConsent(t, "cust-b", "marketing", consent.StatusGranted) // rebuilt from the topic
	p.produce(t, p.email(t, "e4", "cust-b"), p.email(t, "e5", "cust-a"))
	an = p.shredOutputs(t, "compliant.analytics", 5)
	mk = p.shredOutputs(t, "compliant.marketing", 4)
	if _, ok := mk["e5"]; ok {
		t.Fatal("an event of the erased subject reached compliant.marketing")
	}
	h4, err := shred.ParseString(mk["e4"].email)
	if err != nil {
		t.Fatal(err)
	}
	if h4.KeyID != hb.KeyID {
		t.Fatal("after the restarts and the Redis flush cust-b's e-mail is encrypted under a new key: the old key was lost")
	}
	if e := an["e5"].email; shred.IsCiphertext(e) || strings.Contains(e, "cust-a") {
		t.Fatalf("the erased subject's later event carries %q: an erased subject gets no new key, its fields to encrypt are removed", e)
	}

	// Every downstream topic, read by a fresh reader: cust-a's ciphertexts
	// are erased, cust-b's decrypt, cust-a's e-mail is nowhere in clear.
	fresh := p.keyRing(t, kekFile)
	for _, topic := range []string{"compliant.marketing", "compliant.analytics"} {
		for _, m := range p.broker.ReadAll(t, topic, 300*time.Millisecond, 10*time.Second) {
			if bytes.Contains(m.Value, []byte("cust-a@mail.example")) {
				t.Fatalf("%s holds cust-a's e-mail in clear", topic)
			}
		}
		for id, o := range p.shredOutputs(t, topic, 1) {
			subject, _ := avrocodec.StringField(o.value, "subject_id")
			if !shred.IsCiphertext(o.email) {
				continue // e5: no key
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			got, err := fresh.DecryptString(ctx, o.email)
			cancel()
			switch {
			case subject == "cust-a" && !errors.Is(err, shred.ErrErased):
				t.Errorf("%s %s: cust-a's e-mail still decrypts after the erasure (%q, %v)", topic, id, got, err)
			case subject == "cust-b" && (err != nil || got != "cust-b@mail.example"):
				t.Errorf("%s %s: cust-b's e-mail = %q, %v", topic, id, got, err)
			}
		}
	}

	// consentctl decrypt: what an authorised consumer sees.
	c := ctl{t: t, bin: proctest.Build(t, "services/consentctl"), env: []string{"KAFKA_BROKERS=" + strings.Join(p.stack.Brokers(), ","), "CONSENT_KEK_FILE=" + kekFile}}
	out := c.must(0, "decrypt", "--topic", "compliant.marketing", "--max", "0")
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			EventID   string         `json:"event_id"`
			Value     map[string]any `json:"value"`
			Decrypted []string       `json:"decrypted"`
			Erased    []string       `json:"erased"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("consentctl decrypt printed %q: %v", line, err)
		}
		lines++
		switch r.Value["subject_id"] {
		case "cust-a":
			if strings.Join(r.Erased, ",") != "email,ip_address" || r.Value["email"] != shred.Erased {
				t.Errorf("consentctl decrypt, erased subject's %s: %s", r.EventID, line)
			}
		case "cust-b":
			if strings.Join(r.Decrypted, ",") != "email,ip_address" || r.Value["email"] != "cust-b@mail.example" {
				t.Errorf("consentctl decrypt, cust-b's %s: %s", r.EventID, line)
			}
		default:
			t.Errorf("consentctl decrypt printed an unexpected record: %s", line)
		}
	}
	if lines != 4 {
		t.Fatalf("consentctl decrypt printed %d records, want 4:\n%s", lines, out)
	}

	// The ledger: when cust-a's key was created and destroyed, next to the
	// ERASE; cust-b's key lives.
	ha, err := shred.ParseString(mk["e1"].email)
	if err != nil {
		t.Fatal(err)
	}
	lc := ctl{t: t, bin: c.bin, env: []string{"LEDGER_DSN=" + ledgerDSN}}
	for subject, wantDestroyed := range map[string]bool{"cust-a": true, "cust-b": false} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var h struct {
				DataKeys []struct {
					KeyID       string     `json:"key_id"`
					CreatedAt   *time.Time `json:"created_at"`
					DestroyedAt *time.Time `json:"destroyed_at"`
				} `json:"data_keys"`
			}
			out, _, code := lc.run("subject", subject, "--json")
			ok := false
			if code == 0 && json.Unmarshal([]byte(out), &h) == nil && len(h.DataKeys) > 0 {
				ok = true
				for _, k := range h.DataKeys {
					if k.CreatedAt == nil || (k.DestroyedAt != nil) != wantDestroyed {
						ok = false
					}
					if subject == "cust-a" && k.KeyID != hex.EncodeToString(ha.KeyID[:]) {
						ok = false
					}
				}
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ledger's data keys of %s after 30s (want destroyed %v): %s", subject, wantDestroyed, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}
