package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/shred"
)

// TestDevKEK: the dev key-encryption key is a file package shred reads,
// readable by its owner only, made once and kept (a new one would make
// every data key on the broker unreadable).
func TestDevKEK(t *testing.T) {
	dir := t.TempDir()
	path, err := devKEK(dir)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shred.LoadLocalKEK(path); err != nil {
		t.Errorf("the dev KEK is no key-encryption key package shred reads: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the dev KEK's mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	again, err := devKEK(dir)
	if err != nil || again != path {
		t.Fatalf("second devKEK: %q %v, want %q", again, err, path)
	}
	if now, _ := os.ReadFile(path); string(now) != string(text) {
		t.Error("a second run changed the dev KEK")
	}
	other, err := devKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) == string(text) {
		t.Error("two data dirs got the same KEK: it is not random")
	}
}

// TestOnlyTheEnforcerGetsTheKEK: the enforcer's environment is the common
// one and CONSENT_KEK_FILE; the common one (consent-sync's, the ledger's)
// has no KEK and is left as it was.
func TestOnlyTheEnforcerGetsTheKEK(t *testing.T) {
	common := make([]string, 2, 3) // room to append: enforcerEnv must not write into it
	common[0], common[1] = "KAFKA_BROKERS=127.0.0.1:1", "KEYS_TOPIC=consent.keys"
	e := enforcerEnv(common, "/data/consent.kek")
	if !slices.Equal(e, []string{"KAFKA_BROKERS=127.0.0.1:1", "KEYS_TOPIC=consent.keys", "CONSENT_KEK_FILE=/data/consent.kek"}) {
		t.Errorf("enforcer env %q", e)
	}
	if full := common[:3]; full[2] != "" || slices.ContainsFunc(common, func(s string) bool { return strings.HasPrefix(s, "CONSENT_KEK") }) {
		t.Errorf("the common environment got the KEK: %q", full)
	}
}

func TestEncryptingStream(t *testing.T) {
	pol, err := policy.Parse([]byte(`purposes:
  - id: marketing
  - id: analytics
streams:
  - topic: compliant.marketing
    purposes: [marketing]
  - topic: compliant.analytics
    purposes: [analytics]
    treatments:
      - category: user.contact.email
        action: encrypt
`), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := encryptingStream(pol); got != "compliant.analytics" {
		t.Errorf("encryptingStream %q, want compliant.analytics", got)
	}
}
