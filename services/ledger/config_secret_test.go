package main

import (
	"strings"
	"testing"
)

// TestKeyFileSettingsDoNotShowTheirValue: LEDGER_SEAL_KEY_FILE and
// LEDGER_VERIFIER_KEYS_FILE that name no file stop start-up without
// quoting the value, which is the signing key itself when an operator
// mapped a Secret as a value instead of mounting it.
func TestKeyFileSettingsDoNotShowTheirValue(t *testing.T) {
	c := DefaultConfig()
	c.Kafka.Brokers = []string{"127.0.0.1:9092"}
	c.SealKeyFile = "PRIVATE+seal-key-secret-1"
	c.VerifierKeysFile = "verifier-secret-2"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate passed with key files that do not exist")
	}
	msg := err.Error()
	for _, want := range []string{"LEDGER_SEAL_KEY_FILE cannot be read", "LEDGER_VERIFIER_KEYS_FILE cannot be read"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	for _, secret := range []string{"seal-key-secret-1", "verifier-secret-2"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error shows the value %q: %s", secret, msg)
		}
	}
}
