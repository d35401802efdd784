package explain

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
)

const encryptPolicy = `purposes:
  - id: marketing
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    on_missing_consent: redact
    treatments:
      - category: user.contact.email
        action: encrypt
        encryption: deterministic
      - field: shipping_address
        action: encrypt
      - category: user.id
        action: pseudonymise
    default_treatment: remove
`

func explainEncrypt(t *testing.T, consentFile string) (*Explanation, string) {
	t.Helper()
	pol, err := policy.Parse([]byte(encryptPolicy), "enc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeObject(readTestdata(t, "events/purchase.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseConsent(readTestdata(t, consentFile))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Explain(context.Background(), Input{Policy: pol, Source: "enc.yaml", Catalog: cat, Event: ev, State: st, Now: goldenNow, ShowValues: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := ex.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return ex, b.String()
}

func TestExplainEncrypt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, consent string
		must          []string
	}{
		{"passed: encrypted on every output, re-encoded", "consent/marketing_granted.json", []string{
			"decision:       PASSED",
			"the stream encrypts fields on every output, so a re-encoded copy with those fields encrypted is published",
			"treatment:      stream_settings",
			"-> encrypt (deterministic)  (category rule user.contact.email, policy line 8; encrypt applies on every output)",
			"shipping_address.recipient    -> encrypt (randomised)     (inside shipping_address, which is encrypted: every value in it is encrypted or removed)",
		}},
		{"redacted: the encrypt rules and the other treatments", "consent/unknown.json", []string{
			"decision:       REDACTED",
			"-> encrypt (deterministic)",
			"shipping_address.recipient",
			"-> pseudonymise",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ex, text := explainEncrypt(t, tc.consent)
			if ex.DataKey != "illustrative" || !strings.Contains(text, "data key: encrypted fields use a throwaway key drawn for this explanation: the ciphertexts are illustrative") {
				t.Errorf("the output does not say its data key is illustrative (%q):\n%s", ex.DataKey, text)
			}
			for _, m := range tc.must {
				if !strings.Contains(text, m) {
					t.Errorf("output lacks %q:\n%s", m, text)
				}
			}
			ev, err := ex.Streams[0].Event.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			for _, plain := range []string{"jane.doe@example.com", "Main St 1", "Jane Doe", "Berlin", "10115"} {
				if bytes.Contains(ev, []byte(plain)) {
					t.Errorf("published event holds the plaintext %q of an encrypted field: %s", plain, ev)
				}
			}
			if !bytes.Contains(ev, []byte(`"cg1:`)) {
				t.Errorf("published event holds no ciphertext: %s", ev)
			}
		})
	}
}

func TestExplainNoEncryptNoDataKey(t *testing.T) {
	t.Parallel()
	ex := explainCase(t, "events/purchase.json", "consent/unknown.json", false, goldenNow, nil)
	var b bytes.Buffer
	if err := ex.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if ex.DataKey != "" || strings.Contains(b.String(), "data key") {
		t.Errorf("a policy without encrypt mentions a data key: %q", ex.DataKey)
	}
}

func TestIllustrativeKey(t *testing.T) {
	t.Parallel()
	k, err := newIllustrativeKey()
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := k.EncryptString("jane@example.com", true)
	d2, _ := k.EncryptString("jane@example.com", true)
	r1, _ := k.EncryptString("jane@example.com", false)
	r2, _ := k.EncryptString("jane@example.com", false)
	if d1 != d2 || r1 == r2 || d1 == r1 || !strings.HasPrefix(d1, "cg1:") || strings.Contains(d1+r1, "jane") {
		t.Errorf("deterministic %q %q, randomised %q %q", d1, d2, r1, r2)
	}
	b, _ := k.EncryptBytes([]byte{1, 2, 3}, false)
	if len(b) != 24+12+3+16 || string(b[:3]) != "cg\x01" || b[3] != 'R' {
		t.Errorf("envelope %x", b)
	}
	if other, _ := newIllustrativeKey(); func() bool { o, _ := other.EncryptString("jane@example.com", true); return o == d1 }() {
		t.Error("two illustrative keys encrypt alike")
	}
}
