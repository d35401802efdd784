package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/policy"
)

// testKeys is a reversible stand-in for a subject's data key (redact must
// not import pkg/shred): it is not encryption, only a transformation that
// never contains its input, that tells the two modes apart and that can be
// undone to check what was encrypted. Deterministic output depends only on
// the tag and the plaintext; randomised output carries a counter.
type testKeys struct {
	tag   byte // tells the keys of two subjects apart
	ctr   atomic.Uint64
	fail  error // returned by every call when set
	still bool  // randomised ciphertexts without a counter (to compare two walks)
}

const testPrefix = "tk1:"

func (k *testKeys) seal(p []byte, det bool) []byte {
	out := []byte{'t', k.tag, 'R'}
	if det {
		out[2] = 'D'
	} else {
		var n uint64
		if !k.still {
			n = k.ctr.Add(1)
		}
		for i := range 8 {
			out = append(out, byte(n>>(8*i)))
		}
	}
	for i, b := range p {
		out = append(out, b^0xA5^byte(i*7)^k.tag)
	}
	return out
}

func (k *testKeys) EncryptBytes(p []byte, det bool) ([]byte, error) {
	if k.fail != nil {
		return nil, k.fail
	}
	return k.seal(p, det), nil
}

func (k *testKeys) EncryptString(p string, det bool) (string, error) {
	if k.fail != nil {
		return "", k.fail
	}
	return testPrefix + base64.RawURLEncoding.EncodeToString(k.seal([]byte(p), det)), nil
}

// openBytes undoes seal; ok is false for what seal did not make.
func (k *testKeys) openBytes(c []byte) (p []byte, det, ok bool) {
	if len(c) < 3 || c[0] != 't' || c[1] != k.tag {
		return nil, false, false
	}
	det = c[2] == 'D'
	body := c[3:]
	if !det {
		if len(body) < 8 {
			return nil, false, false
		}
		body = body[8:]
	}
	p = make([]byte, len(body))
	for i, b := range body {
		p[i] = b ^ 0xA5 ^ byte(i*7) ^ k.tag
	}
	return p, det, true
}

func (k *testKeys) openString(c string) (string, bool, bool) {
	rest, found := strings.CutPrefix(c, testPrefix)
	if !found {
		return "", false, false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", false, false
	}
	p, det, ok := k.openBytes(b)
	return string(p), det, ok
}

// encKey is the map key Apply makes of k under keys (deterministic).
func encKey(keys *testKeys, k string) string {
	s, _ := keys.EncryptString(k, true)
	return s
}

func encryptRule(pattern string, e policy.Encryption) policy.Treatment {
	return policy.Treatment{Category: pattern, Action: policy.ActionEncrypt, Encryption: e}
}

// decrypts checks that got is the encryption of want in mode det.
func decrypts(t *testing.T, keys *testKeys, path string, got, want any, det bool) {
	t.Helper()
	if w, ok := want.(map[string]any); ok && len(w) == 1 { // a union branch
		g, ok := got.(map[string]any)
		if !ok || len(g) != 1 {
			t.Errorf("%s: %#v is not a union value like %#v", path, got, want)
			return
		}
		for k, wv := range w {
			decrypts(t, keys, path, g[k], wv, det)
		}
		return
	}
	switch w := want.(type) {
	case string:
		g, _ := got.(string)
		p, d, ok := keys.openString(g)
		if !ok || p != w || d != det {
			t.Errorf("%s: %q does not decrypt to the input (deterministic %v): got %q, %v, %v", path, g, det, p, d, ok)
		}
	case []byte:
		g, _ := got.([]byte)
		p, d, ok := keys.openBytes(g)
		if !ok || !bytes.Equal(p, w) || d != det {
			t.Errorf("%s: %x does not decrypt to the input", path, g)
		}
	default:
		t.Errorf("%s: cannot check %T", path, want)
	}
}

func TestEncryptPurchaseEveryMode(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	s := schemaOf(t, purchaseName, 0)
	stream := keepAll(
		encryptRule("user.contact.email", policy.EncryptDeterministic),
		policy.Treatment{Field: "shipping_address.street", Action: policy.ActionEncrypt, Encryption: policy.EncryptRandomised},
		categoryRule("user.device.ip_address", policy.ActionTruncateIP),
	)
	in := purchase()
	for _, mode := range []Mode{ModeRemoveExcluded, ModeRedact} {
		keys := &testKeys{tag: 1}
		res := apply(t, r, Request{Schema: s, Value: in, Stream: stream, Mode: mode, Keys: keys})
		decrypts(t, keys, "email", res.Value["email"], in["email"], true)
		street := res.Value["shipping_address"].(map[string]any)["consentgate.events.Address"].(map[string]any)["street"]
		decrypts(t, keys, "shipping_address.street", street, in["shipping_address"].(map[string]any)["consentgate.events.Address"].(map[string]any)["street"], false)
		want := []string{"email", "shipping_address.street"}
		if mode == ModeRedact {
			want = []string{"email", "ip_address", "shipping_address.street"} // truncate_ip only when redacting
		} else if !reflect.DeepEqual(res.Value["ip_address"], in["ip_address"]) {
			t.Errorf("%v: ip_address changed outside redaction", mode)
		}
		if !slices.Equal(res.Treated, want) {
			t.Errorf("%v: treated %q, want %q", mode, res.Treated, want)
		}
		// Deterministic: the same ciphertext again; randomised: a new one.
		again := apply(t, r, Request{Schema: s, Value: in, Stream: stream, Mode: mode, Keys: keys})
		if !reflect.DeepEqual(again.Value["email"], res.Value["email"]) {
			t.Errorf("%v: deterministic encryption gave two ciphertexts", mode)
		}
		if reflect.DeepEqual(again.Value["shipping_address"], res.Value["shipping_address"]) {
			t.Errorf("%v: randomised encryption gave the same ciphertext twice", mode)
		}
		// Keys are per request: the compiled program is shared, not the keys.
		other := &testKeys{tag: 2}
		third := apply(t, r, Request{Schema: s, Value: in, Stream: stream, Mode: mode, Keys: other})
		decrypts(t, other, "email", third.Value["email"], in["email"], true)
	}
}

func TestEncryptKitchen(t *testing.T) {
	t.Parallel()
	r := NewWithoutKey() // encrypt needs no pseudonymisation key, map keys included
	s := schemaOf(t, kitchenName, 0)
	in := kitchen()
	keys := &testKeys{tag: 3}
	tests := []struct {
		name    string
		rules   []policy.Treatment
		mode    Mode
		check   func(t *testing.T, out map[string]any)
		treated []string
	}{
		{"record: unannotated fields inherit, non-strings removed, own category its own rule",
			[]policy.Treatment{encryptRule("user.contact", policy.EncryptRandomised)}, ModeRemoveExcluded,
			func(t *testing.T, out map[string]any) {
				p, ip := out["profile"].(map[string]any), in["profile"].(map[string]any)
				decrypts(t, keys, "profile.nickname", p["nickname"], ip["nickname"], false)
				decrypts(t, keys, "profile.note", p["note"], ip["note"], false)
				decrypts(t, keys, "profile.email", p["email"], ip["email"], false)
				decrypts(t, keys, "profile.inner.code", p["inner"].(map[string]any)["code"], "secret-code", false)
				if p["age"] != int32(0) {
					t.Errorf("profile.age (int) = %v, want removed", p["age"])
				}
				c := out["contacts"].(map[string]any)
				home, ok := c[encKey(keys, "home")].(map[string]any)
				if len(c) != 1 || !ok {
					t.Fatalf("contacts keys not encrypted deterministically: %v", c)
				}
				decrypts(t, keys, "contacts{}.phone", home["phone"], "+44 20 7946 0958", false)
				decrypts(t, keys, "contacts{}.label", home["label"], "landline", false)
			},
			[]string{"contacts", "contacts{}.label", "contacts{}.phone", "profile.age", "profile.email", "profile.inner.code", "profile.nickname", "profile.note"}},
		{"arrays, maps, unions item-wise; logical types removed",
			[]policy.Treatment{encryptRule("user.behavior.browsing", policy.EncryptDeterministic)}, ModeRedact,
			func(t *testing.T, out map[string]any) {
				tags := out["tags"].([]any)
				decrypts(t, keys, "tags[0]", tags[0], "gardening", true)
				decrypts(t, keys, "tags[1]", tags[1], "203.0.113.77", true)
				attrs := out["attrs"].(map[string]any)
				decrypts(t, keys, "attrs{}", attrs[encKey(keys, "favourite")], "roses", true)
				mixed := out["mixed"].([]any)
				if mixed[0] != nil {
					t.Errorf("null item = %v", mixed[0])
				}
				decrypts(t, keys, "mixed[1]", mixed[1], map[string]any{"string": "hello world"}, true)
				if ts, _ := out["seen_at"].(time.Time); !ts.Equal(time.Unix(0, 0)) || out["clock"] != any(time.Duration(0)) {
					t.Errorf("timestamp-micros / time-millis not removed: %v %v", out["seen_at"], out["clock"])
				}
			},
			[]string{"attrs", "clock", "mixed", "seen_at", "tags"}},
		{"bytes encrypted; fixed, a long union branch, numbers, enums removed",
			[]policy.Treatment{encryptRule("user.device.id", policy.EncryptRandomised), encryptRule("user.demographic.age", policy.EncryptRandomised),
				encryptRule("user.health", policy.EncryptRandomised)}, ModeRemoveExcluded,
			func(t *testing.T, out map[string]any) {
				decrypts(t, keys, "blob", out["blob"], []byte{1, 2, 3}, false)
				if !bytes.Equal(out["hash"].([]byte), make([]byte, 4)) || !reflect.DeepEqual(out["either"], map[string]any{"string": ""}) {
					t.Errorf("fixed / union with a long not removed: %v %v", out["hash"], out["either"])
				}
				if out["score"] != float32(0) || out["ratio"] != float64(0) || out["level"] != "LOW" {
					t.Errorf("numbers / enum not removed: %v %v %v", out["score"], out["ratio"], out["level"])
				}
			},
			[]string{"blob", "born", "either", "hash", "level", "ratio", "score"}},
		{"default_treatment encrypt: randomised, only when redacting",
			nil, ModeRedact,
			func(t *testing.T, out map[string]any) {
				decrypts(t, keys, "subject_id", out["subject_id"], "subject-4", false)
				if out["event_id"] != "ev-4" {
					t.Errorf("unannotated event_id changed: %v", out["event_id"])
				}
			}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := keepAll(tt.rules...)
			if tt.rules == nil {
				st.DefaultTreatment = policy.ActionEncrypt
			}
			res := apply(t, r, Request{Schema: s, Value: in, Stream: st, Mode: tt.mode, Keys: keys})
			tt.check(t, res.Value)
			if tt.treated != nil && !slices.Equal(res.Treated, tt.treated) {
				t.Errorf("treated %q, want %q", res.Treated, tt.treated)
			}
			if tt.rules == nil {
				// Outside redaction the default does not apply.
				res := apply(t, r, Request{Schema: s, Value: in, Stream: st, Mode: ModeRemoveExcluded, Keys: keys})
				if len(res.Treated) != 0 {
					t.Errorf("default_treatment encrypt applied outside redaction: %q", res.Treated)
				}
			}
		})
	}
}

func TestEncryptWithoutKeysRemoves(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	s := schemaOf(t, kitchenName, 0)
	st := keepAll(encryptRule("user.contact", policy.EncryptRandomised), encryptRule("user.behavior.browsing", policy.EncryptDeterministic))
	for _, mode := range []Mode{ModeRedact, ModeRemoveExcluded} {
		res := apply(t, r, Request{Schema: s, Value: kitchen(), Stream: st, Mode: mode})
		if p := res.Value["profile"].(map[string]any); p["nickname"] != "" || p["note"] != nil || p["email"] != "" {
			t.Errorf("%v: profile fields not removed without keys: %v", mode, p)
		}
		if len(res.Value["tags"].([]any)) != 0 || len(res.Value["attrs"].(map[string]any)) != 0 || len(res.Value["contacts"].(map[string]any)) != 0 {
			t.Errorf("%v: containers not removed without keys", mode)
		}
		for _, p := range []string{"attrs", "contacts", "mixed", "profile.email", "profile.nickname", "profile.note", "tags"} {
			if !slices.Contains(res.Treated, p) {
				t.Errorf("%v: %s not listed as treated: %q", mode, p, res.Treated)
			}
		}
	}
}

func TestEncryptExcludedIsRemoved(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	keys := &testKeys{tag: 4}
	res := apply(t, r, Request{Schema: schemaOf(t, purchaseName, 0), Value: purchase(), Mode: ModeRemoveExcluded, Keys: keys,
		Stream: keepAll(encryptRule("user.contact.*", policy.EncryptRandomised)), Excluded: []string{"user.contact.email"}})
	if res.Value["email"] != nil {
		t.Errorf("excluded email = %v, want removed (null)", res.Value["email"])
	}
	if _, _, ok := keys.openString(res.Value["phone"].(map[string]any)["string"].(string)); !ok {
		t.Errorf("phone not encrypted: %v", res.Value["phone"])
	}
}

func TestEncryptError(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	boom := errors.New("keys unavailable")
	for _, mode := range []Mode{ModeRedact, ModeRemoveExcluded} {
		res, err := r.Apply(Request{Schema: schemaOf(t, kitchenName, 0), Value: kitchen(), Mode: mode, Keys: &testKeys{fail: boom},
			Stream: keepAll(encryptRule("user.behavior.browsing", policy.EncryptDeterministic))})
		if !errors.Is(err, ErrEncrypt) || !errors.Is(err, boom) || res.Value != nil {
			t.Fatalf("%v: Apply = %v, %v; want ErrEncrypt wrapping the Encrypter's error and no value", mode, res.Value, err)
		}
		if strings.Contains(err.Error(), "gardening") || strings.Contains(err.Error(), "favourite") {
			t.Errorf("error quotes a value: %v", err)
		}
	}
}

func TestEncryptNeedsNoPseudonymisationKey(t *testing.T) {
	t.Parallel()
	if ActionNeedsKey(policy.ActionEncrypt) || ActionNeedsKey(actEncryptDeterministic) {
		t.Error("encrypt needs the pseudonymisation key")
	}
	pol, err := policy.Parse([]byte(`purposes:
  - id: p
streams:
  - purposes: [p]
    on_missing_consent: redact
    treatments:
      - category: user.behavior.*
        action: encrypt
        encryption: deterministic
    default_treatment: encrypt
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if NeedsKey(pol) {
		t.Error("NeedsKey is true for a policy that only encrypts")
	}
}

func TestEncryptActionsDescribe(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	acts, err := r.Actions(Request{Schema: schemaOf(t, purchaseName, 0), Mode: ModeRemoveExcluded,
		Stream: keepAll(encryptRule("user.contact.email", policy.EncryptDeterministic), encryptRule("user.contact.*", policy.EncryptRandomised))})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FieldAction{}
	for _, a := range acts {
		got[a.Path] = a
	}
	if a := got["email"]; a.Action != policy.ActionEncrypt || a.Encryption != policy.EncryptDeterministic {
		t.Errorf("email: %+v", a)
	}
	if a := got["phone"]; a.Action != policy.ActionEncrypt || a.Encryption != policy.EncryptRandomised {
		t.Errorf("phone: %+v", a)
	}
	if a := got["order_id"]; a.Action != policy.ActionKeep || a.Encryption != "" {
		t.Errorf("order_id: %+v", a)
	}
}

// TestEncryptRecordLeavesNothingReadable: inside an encrypted field every
// value is encrypted or removed, also sub-fields with a category of their
// own whose rule would keep, mask or pseudonymise them (an erasure must
// leave nothing of the field readable); an own remove rule still removes.
func TestEncryptRecordLeavesNothingReadable(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	s := schemaOf(t, purchaseName, 0)
	in := purchase()
	addr := in["shipping_address"].(map[string]any)["consentgate.events.Address"].(map[string]any)
	stream := keepAll(
		policy.Treatment{Field: "shipping_address", Action: policy.ActionEncrypt, Encryption: policy.EncryptRandomised},
		categoryRule("user.name", policy.ActionKeep),
		categoryRule("user.contact.address.city", policy.ActionMask),
		categoryRule("user.contact.address.country", policy.ActionRemove),
		encryptRule("user.contact.address.postal_code", policy.EncryptDeterministic),
	)
	for _, mode := range []Mode{ModeRemoveExcluded, ModeRedact} {
		keys := &testKeys{tag: 5}
		res := apply(t, r, Request{Schema: s, Value: in, Stream: stream, Mode: mode, Keys: keys})
		out := res.Value["shipping_address"].(map[string]any)["consentgate.events.Address"].(map[string]any)
		decrypts(t, keys, "recipient", out["recipient"], addr["recipient"], false)
		decrypts(t, keys, "street", out["street"], addr["street"], false)
		decrypts(t, keys, "city", out["city"], addr["city"], false)
		decrypts(t, keys, "postal_code", out["postal_code"], addr["postal_code"], true) // its own rule's mode
		wantCountry := any("")
		if mode == ModeRemoveExcluded {
			// The remove rule applies only when redacting: encrypted then.
			decrypts(t, keys, "country", out["country"], addr["country"], false)
		} else if out["country"] != wantCountry {
			t.Errorf("%v: country = %v, want removed by its own rule", mode, out["country"])
		}
	}
}
