package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/consentgate/consentgate/pkg/seal"
)

func TestVerifierKeyIsTheSignersOwn(t *testing.T) {
	for range 200 {
		skey, vkey, err := seal.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err := verifierKey(skey + "\n")
		if err != nil || got != vkey {
			t.Fatalf("verifierKey: %q, %v; want %q", got, err, vkey)
		}
	}
	skey, _, _ := seal.GenerateKey(rand.Reader)
	for _, bad := range []string{"", "PRIVATE+KEY+x", strings.Replace(skey, "PRIVATE", "PUBLIC", 1), skey[:len(skey)-4] + "AAAA"} {
		_, err := verifierKey(bad)
		if err == nil {
			t.Errorf("verifierKey accepted %q", bad)
		} else if len(bad) > 20 && strings.Contains(err.Error(), bad[len(bad)-20:]) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

func TestSealKeysSignAndVerify(t *testing.T) {
	dir := t.TempDir()
	skey, _, _ := seal.GenerateKey(rand.Reader)
	_, other, _ := seal.GenerateKey(rand.Reader)
	sf, vf := filepath.Join(dir, "seal.key"), filepath.Join(dir, "trusted.pub")
	if err := os.WriteFile(sf, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vf, []byte("# a rotated key\n"+other+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	signer, verifiers, err := sealKeys(sf, vf)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := seal.Sign(signer, seal.Checkpoint{Topic: "consent.audit", Partition: 1, Size: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seal.Open(msg, verifiers); err != nil {
		t.Fatalf("the ledger does not trust its own sealer: %v", err)
	}
	if _, err := note.Open(msg, verifiers); err != nil {
		t.Fatal(err)
	}
	if s, v, err := sealKeys("", ""); s != nil || v != nil || err != nil {
		t.Fatalf("no files: %v %v %v", s, v, err)
	}
}
