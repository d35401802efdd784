package enforce

// The reference model's encrypt streams: every round adds to the policy of
// testdata/refmodel_policy.yaml one to three random streams with encrypt
// rules (deterministic and randomised, by category and by field path,
// among other rules) and perhaps default_treatment: encrypt, restated for
// the model as mStreams. The enforcers encrypt under real shred data keys
// (memKeys of keys_test.go); the comparison decrypts what they wrote.

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/shred"
)

var (
	refEncCategories = []string{"*", "user.id", "user.contact.*", "user.contact.email", "user.contact.address", "user.device",
		"user.device.id", "user.behavior.*", "user.behavior.browsing", "user.health", "user.demographic.age", "user.location.*",
		"user.financial", "user.name", "user.device.ip_address", "user.behavior.purchase"}
	refEncFields = []string{"event_id", "occurred_at", "note", "campaign", "currency", "message_id", "device", "device.os",
		"tags", "segments", "items[].sku", "items[].health_category", "items", "subject_id", "email", "geo", "shipping_address",
		"payment", "nickname", "page_url"}
	refEncSchemas = []string{"consentgate.events.PageView", "consentgate.events.Purchase", "consentgate.events.EmailEngagement",
		"consentgate.test.Profile"}
	refEncPurposes = []string{"marketing", "analytics", "personalisation", "sale", "ads"}
)

// encStream draws a stream named topic and its YAML.
func (g *refGen) encStream(topic string) (mStream, string) {
	s := mStream{topic: topic}
	var b strings.Builder
	fmt.Fprintf(&b, "  - topic: %s\n", topic)
	p := g.rnd.Perm(len(refEncPurposes))
	for i := range 1 + g.rnd.IntN(2) {
		s.purposes = append(s.purposes, refEncPurposes[p[i]])
	}
	fmt.Fprintf(&b, "    purposes: [%s]\n", strings.Join(s.purposes, ", "))
	if g.rnd.IntN(4) == 0 {
		q := g.rnd.Perm(len(refEncSchemas))
		for i := range 1 + g.rnd.IntN(2) {
			s.schemas = append(s.schemas, refEncSchemas[q[i]])
		}
		fmt.Fprintf(&b, "    schemas: [%s]\n", strings.Join(s.schemas, ", "))
	}
	if g.rnd.IntN(2) == 0 {
		s.redact = true
		b.WriteString("    on_missing_consent: redact\n")
	}
	if g.rnd.IntN(3) == 0 {
		s.removeUnannot = true
		b.WriteString("    unannotated_fields: remove\n")
	}
	if g.rnd.IntN(4) == 0 {
		s.dropExcluded = true
		b.WriteString("    excluded_categories: drop\n")
	}
	b.WriteString("    treatments:\n")
	for range 1 + g.rnd.IntN(4) {
		var r mRule
		if g.rnd.IntN(2) == 0 {
			r.category = refEncCategories[g.rnd.IntN(len(refEncCategories))]
			fmt.Fprintf(&b, "      - category: %q\n", r.category)
		} else {
			r.field = refEncFields[g.rnd.IntN(len(refEncFields))]
			fmt.Fprintf(&b, "      - field: %q\n", r.field)
		}
		switch x := g.rnd.IntN(20); {
		case x < 5:
			r.action = "encrypt"
			r.encryption = "deterministic"
			b.WriteString("        action: encrypt\n        encryption: deterministic\n")
		case x < 8:
			r.action = "encrypt"
			b.WriteString("        action: encrypt\n        encryption: randomised\n")
		case x < 11:
			r.action = "encrypt" // randomised by default
			b.WriteString("        action: encrypt\n")
		default:
			r.action = []string{"keep", "keep", "remove", "remove", "mask", "pseudonymise", "generalise_hour", "truncate_ip", "keep"}[x-11]
			fmt.Fprintf(&b, "        action: %s\n", r.action)
		}
		s.rules = append(s.rules, r)
	}
	s.defaultTreatment = []string{"remove", "mask", "encrypt", "encrypt", "keep"}[g.rnd.IntN(5)]
	fmt.Fprintf(&b, "    default_treatment: %s\n", s.defaultTreatment)
	switch g.rnd.IntN(4) {
	case 0:
		s.google = true
		b.WriteString("    google_consent_mode: true\n")
	case 1:
		b.WriteString("    google_consent_mode: false\n")
	}
	return s, b.String()
}

// drawPolicy gives the round a policy: the file's streams and one to three
// random encrypt streams (drawn again while the policy does not parse: a
// rule that can never match, or two for one field, is an error), and
// rebuilds every world's enforcers on it.
func (env *refEnv) drawPolicy(g *refGen) {
	t := env.t
	t.Helper()
	text := string(env.polText)
	streams := append([]mStream(nil), refStreams...)
	for i := range 1 + g.rnd.IntN(3) {
		for try := 0; ; try++ {
			if try == 200 {
				t.Fatalf("no random encrypt stream parses; last policy:\n%s", text)
			}
			s, y := g.encStream(fmt.Sprintf("compliant.encrypted_%d", i))
			if s.defaultTreatment != "encrypt" && !slices.ContainsFunc(s.rules, func(r mRule) bool { return r.action == "encrypt" }) {
				continue // an encrypt stream encrypts
			}
			if _, err := policy.Parse([]byte(text+y), "refmodel_policy.yaml"); err != nil {
				continue
			}
			text += y
			streams = append(streams, s)
			break
		}
	}
	pol, err := policy.Parse([]byte(text), "refmodel_policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkRefPolicyStreams(t, pol, streams)
	if !pol.Encrypts() {
		t.Fatalf("the round's policy encrypts nothing:\n%s", text)
	}
	env.streams = streams
	for _, w := range env.worlds {
		env.build(w, pol)
	}
}

// key is the subject's data key, nil when it was never given one.
func (m *memKeys) key(subject string) *shred.DataKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[subject]
}

// deterministic is the deterministic ciphertext of plain (a string, or
// bytes) under the subject's key, as a string; "" without a key.
func (m *memKeys) deterministic(subject string, plain any) string {
	k := m.key(subject)
	if k == nil {
		return ""
	}
	switch p := plain.(type) {
	case string:
		if c, err := k.EncryptString(p, true); err == nil {
			return c
		}
	case []byte:
		if c, err := k.EncryptBytes(p, true); err == nil {
			return string(c)
		}
	}
	return ""
}

// checkCiphertext says what is wrong with got as the encryption of plain
// under the subject's key ("" if nothing): it must be a ciphertext of the
// mode (the envelope says), decrypt to plain, and, deterministic, equal
// the deterministic ciphertext of plain (so equal values of one subject
// give equal ciphertexts).
func (m *memKeys) checkCiphertext(subject string, got, plain any, det bool) string {
	k := m.key(subject)
	if k == nil {
		return "should be encrypted, but the subject was given no data key"
	}
	var h shred.Header
	var err error
	var dec any
	switch p := plain.(type) {
	case string:
		c, ok := got.(string)
		if !ok || !shred.IsCiphertext(c) {
			return fmt.Sprintf("should be a ciphertext, published %v", got)
		}
		if h, err = shred.ParseString(c); err != nil {
			return fmt.Sprintf("ciphertext does not parse: %v", err)
		}
		if dec, err = k.DecryptString(c); err != nil || dec != p {
			return fmt.Sprintf("ciphertext decrypts to %v (%v), want %q", dec, err, p)
		}
		if want, _ := k.EncryptString(p, true); det && c != want {
			return "deterministic ciphertext is not the deterministic encryption of the value"
		}
	case []byte:
		c, ok := got.([]byte)
		if !ok || !shred.IsCiphertextBytes(c) {
			return fmt.Sprintf("should be a ciphertext, published %v", got)
		}
		if h, err = shred.Parse(c); err != nil {
			return fmt.Sprintf("ciphertext does not parse: %v", err)
		}
		d, err := k.DecryptBytes(c)
		if err != nil || !bytes.Equal(d, p) {
			return fmt.Sprintf("ciphertext decrypts to %v (%v), want %v", d, err, p)
		}
		if want, _ := k.EncryptBytes(p, true); det && !bytes.Equal(c, want) {
			return "deterministic ciphertext is not the deterministic encryption of the value"
		}
	default:
		return fmt.Sprintf("the model encrypts a %T", plain)
	}
	if h.Deterministic() != det {
		return fmt.Sprintf("ciphertext deterministic=%v, want %v", h.Deterministic(), det)
	}
	return ""
}

// decrypted is native value v with every ciphertext (string or bytes)
// replaced by what it decrypts to under k, tagged: two encodings of one
// event compare equal when their randomised ciphertexts hold the same.
func decrypted(v any, k *shred.DataKey) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for key, val := range x {
			out[key] = decrypted(val, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = decrypted(val, k)
		}
		return out
	case string:
		if k != nil && shred.IsCiphertext(x) {
			if d, err := k.DecryptString(x); err == nil {
				return [2]string{"decrypted", d}
			}
		}
	case []byte:
		if k != nil && shred.IsCiphertextBytes(x) {
			if d, err := k.DecryptBytes(x); err == nil {
				return [2]string{"decrypted bytes", string(d)}
			}
		}
	}
	return v
}
