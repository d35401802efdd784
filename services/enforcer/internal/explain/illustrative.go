package explain

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
)

// illustrativeKey stands in for a subject's data key in explain: a
// throwaway key, drawn at random for every explanation and never stored,
// so the ciphertexts it makes show where and in what form fields are
// encrypted, and decrypt with nothing. It writes the envelope of package
// shred (magic "cg" 0x01, mode 'D' or 'R', a random key id, key version 1;
// strings as "cg1:" + base64url) but is not its cipher: randomised values
// are AES-256-GCM under a random nonce, deterministic ones AES-256-GCM
// under a nonce derived from the value (a stand-in for AES-SIV), so equal
// values give equal ciphertexts as they do in the enforcer.
type illustrativeKey struct {
	aead    cipher.AEAD // randomised: 12-byte nonce
	detAEAD cipher.AEAD // deterministic: 16-byte synthetic nonce
	mac     []byte
	id      [16]byte
}

func newIllustrativeKey() (*illustrativeKey, error) {
	var k [64]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("illustrative data key: %w", err)
	}
	block, err := aes.NewCipher(k[:32])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	det, err := cipher.NewGCMWithNonceSize(block, 16)
	if err != nil {
		return nil, err
	}
	ik := &illustrativeKey{aead: aead, detAEAD: det, mac: k[32:]}
	if _, err := rand.Read(ik.id[:]); err != nil {
		return nil, fmt.Errorf("illustrative data key: %w", err)
	}
	return ik, nil
}

// String hides the key.
func (k *illustrativeKey) String() string { return "explain.illustrativeKey{redacted}" }

func (k *illustrativeKey) EncryptBytes(p []byte, deterministic bool) ([]byte, error) {
	header := make([]byte, 0, 24)
	header = append(header, 'c', 'g', 0x01, 'R')
	if deterministic {
		header[3] = 'D'
	}
	header = append(header, k.id[:]...)
	header = binary.BigEndian.AppendUint32(header, 1)
	out := append([]byte{}, header...)
	if deterministic {
		m := hmac.New(sha256.New, k.mac)
		m.Write(p)
		nonce := m.Sum(nil)[:16]
		out = append(out, nonce...)
		return k.detAEAD.Seal(out, nonce, p, header), nil
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("illustrative data key: %w", err)
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, p, header), nil
}

func (k *illustrativeKey) EncryptString(p string, deterministic bool) (string, error) {
	c, err := k.EncryptBytes([]byte(p), deterministic)
	if err != nil {
		return "", err
	}
	return "cg1:" + base64.RawURLEncoding.EncodeToString(c), nil
}
