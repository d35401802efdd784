package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/consentgate/consentgate/pkg/seal"
)

// verifierKey derives the verifier key ("name+hash+key") of a note signer
// key ("PRIVATE+KEY+name+hash+key", Ed25519), so that a ledger given only
// the sealer's key trusts its checkpoints. Errors never show the key.
func verifierKey(skey string) (string, error) {
	f := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	bad := errors.New("the seal key is not a note signer key (PRIVATE+KEY+name+hash+key)")
	if len(f) != 5 || f[0] != "PRIVATE" || f[1] != "KEY" {
		return "", bad
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", bad
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey := f[2] + "+" + f[3] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, pub...))
	if _, err := note.NewVerifier(vkey); err != nil {
		return "", bad // the key hash does not match the key
	}
	return vkey, nil
}

// sealKeys reads the signer key file (may be empty: no sealing) and the
// verifier keys file (may be empty: the signer's own verifier key).
func sealKeys(signerFile, verifiersFile string) (note.Signer, note.Verifiers, error) {
	var (
		signer note.Signer
		vkeys  []byte
	)
	if signerFile != "" {
		b, err := os.ReadFile(signerFile)
		if err != nil {
			return nil, nil, fmt.Errorf("LEDGER_SEAL_KEY_FILE: %w", err)
		}
		if signer, err = seal.ParseSigner(b); err != nil {
			return nil, nil, fmt.Errorf("LEDGER_SEAL_KEY_FILE: %w", err)
		}
		v, err := verifierKey(string(b))
		if err != nil {
			return nil, nil, fmt.Errorf("LEDGER_SEAL_KEY_FILE: %w", err)
		}
		vkeys = []byte(v + "\n")
	}
	if verifiersFile != "" {
		b, err := os.ReadFile(verifiersFile)
		if err != nil {
			return nil, nil, fmt.Errorf("LEDGER_VERIFIER_KEYS_FILE: %w", err)
		}
		vkeys = append(vkeys, bytes.TrimSpace(b)...)
	}
	if len(bytes.TrimSpace(vkeys)) == 0 {
		return signer, nil, nil
	}
	v, err := seal.ParseVerifiers(vkeys)
	if err != nil {
		return nil, nil, fmt.Errorf("LEDGER_VERIFIER_KEYS_FILE: %w", err)
	}
	return signer, v, nil
}
