package shred

import (
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/consentgate/consentgate/pkg/internal/secretfile"
)

// KEK wraps and unwraps data keys. Local is the only provider; a KMS
// implements the same. ad binds a wrapped key to its key id, version and
// subject: a wrapped key moved to another record does not unwrap.
// Implementations never put key material into errors.
type KEK interface {
	Wrap(ctx context.Context, dek, ad []byte) (kekID string, wrapped []byte, err error)
	Unwrap(ctx context.Context, kekID string, wrapped, ad []byte) ([]byte, error)
}

// Errors of the key-encryption keys.
var (
	// ErrUnknownKEK: the wrapped key names a KEK the provider does not
	// hold (the operator removed an old KEK still in use, or runs with
	// another one).
	ErrUnknownKEK = errors.New("shred: unknown key-encryption key")
	// ErrUnwrap: the wrapped key does not authenticate under its KEK.
	ErrUnwrap = errors.New("shred: wrapped data key does not authenticate")
)

// The settings the services read the local KEK from (LocalKEKFromEnv).
const (
	EnvKEKFile = "CONSENT_KEK_FILE"
	EnvKEK     = "CONSENT_KEK"
)

const (
	kekLen    = 32
	kekIDSalt = "consentgate kek id\x00"
	adPrefix  = "consentgate/dek/v1\x00"
)

// dekAD is the associated data of a wrapped data key:
// "consentgate/dek/v1\x00" || key id (16) || version (uint32 BE) || subject.
func dekAD(id [16]byte, version uint32, subject string) []byte {
	ad := make([]byte, 0, len(adPrefix)+16+4+len(subject))
	ad = append(ad, adPrefix...)
	ad = append(ad, id[:]...)
	ad = binary.BigEndian.AppendUint32(ad, version)
	return append(ad, subject...)
}

// LocalKEK is the local provider: AES-256-GCM keys held in memory. The
// first key wraps, every key unwraps (rotation: put the new key first,
// keep the old ones until no wrapped key needs them). It never prints its
// keys (String).
type LocalKEK struct {
	keys []localKey
}

type localKey struct {
	id   string
	aead cipher.AEAD
}

// ParseLocalKEK reads the text of a KEK file: one or more lines, each the
// standard base64 of exactly 32 random bytes; blank lines and lines
// starting with # are ignored. Errors give the line number and what is
// wrong, never the line.
func ParseLocalKEK(text []byte) (*LocalKEK, error) {
	k := &LocalKEK{}
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("KEK line %d is not standard base64 (the line is not shown)", n)
		}
		if len(raw) != kekLen {
			return nil, fmt.Errorf("KEK line %d decodes to %d bytes, want %d (the line is not shown): write the base64 of 32 random bytes, e.g. the output of `openssl rand -base64 32`", n, len(raw), kekLen)
		}
		id := localKEKID(raw)
		if first, dup := seen[id]; dup {
			return nil, fmt.Errorf("KEK line %d is the same key as line %d", n, first)
		}
		seen[id] = n
		aead, err := newGCM(raw)
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, localKey{id: id, aead: aead})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("KEK text cannot be read: %v", err)
	}
	if len(k.keys) == 0 {
		return nil, errors.New("KEK text holds no key: write one line with the base64 of 32 random bytes")
	}
	return k, nil
}

// LoadLocalKEK reads a KEK file (see ParseLocalKEK). Its errors show
// neither the path (an operator may have put the key there) nor the
// content.
func LoadLocalKEK(path string) (*LocalKEK, error) {
	if path == "" {
		return nil, errors.New("KEK file: no path given")
	}
	if secretfile.LooksLikeContent(path) || looksLikeKey(path) {
		return nil, errors.New("the KEK file setting looks like a key, not a path (the value is not shown): write the key into a file and give its path")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("KEK file cannot be read (%v; the path is not shown)", secretfile.PathErr(err))
	}
	k, err := ParseLocalKEK(b)
	if err != nil {
		return nil, fmt.Errorf("KEK file: %w", err)
	}
	return k, nil
}

func looksLikeKey(s string) bool {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	return err == nil && len(raw) == kekLen
}

// LocalKEKFromEnv reads the local KEK the way the services do: from the
// file CONSENT_KEK_FILE names, or from the text of CONSENT_KEK; exactly
// one of the two must be set. ok is false when neither is (no KEK
// configured).
func LocalKEKFromEnv(getenv func(string) string) (k *LocalKEK, ok bool, err error) {
	file, text := getenv(EnvKEKFile), getenv(EnvKEK)
	switch {
	case file != "" && text != "":
		return nil, true, fmt.Errorf("%s and %s are both set: set exactly one", EnvKEKFile, EnvKEK)
	case file != "":
		k, err := LoadLocalKEK(file)
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", EnvKEKFile, err)
		}
		return k, true, nil
	case text != "":
		k, err := ParseLocalKEK([]byte(text))
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", EnvKEK, err)
		}
		return k, true, nil
	}
	return nil, false, nil
}

func localKEKID(key []byte) string {
	sum := sha256.Sum256(append([]byte(kekIDSalt), key...))
	return "local:" + hex.EncodeToString(sum[:8])
}

// IDs returns the KEK ids, the wrapping one first.
func (k *LocalKEK) IDs() []string {
	out := make([]string, len(k.keys))
	for i, lk := range k.keys {
		out[i] = lk.id
	}
	return out
}

// String names the KEKs by id only.
func (k *LocalKEK) String() string {
	return fmt.Sprintf("local KEK (%d keys, wraps with %s)", len(k.keys), k.keys[0].id)
}

// GoString is String: %#v prints no key material either.
func (k *LocalKEK) GoString() string { return k.String() }

// Wrap encrypts dek under the first key: AES-256-GCM with a random nonce;
// wrapped is nonce || ciphertext || tag.
func (k *LocalKEK) Wrap(_ context.Context, dek, ad []byte) (string, []byte, error) {
	lk := k.keys[0]
	nonce := make([]byte, nonceLen, nonceLen+len(dek)+tagLen)
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, errors.New("shred: no randomness for a nonce")
	}
	return lk.id, lk.aead.Seal(nonce, nonce, dek, ad), nil
}

// Unwrap decrypts a key wrapped by Wrap under the key kekID.
func (k *LocalKEK) Unwrap(_ context.Context, kekID string, wrapped, ad []byte) ([]byte, error) {
	for _, lk := range k.keys {
		if lk.id != kekID {
			continue
		}
		if len(wrapped) < nonceLen+tagLen {
			return nil, ErrUnwrap
		}
		dek, err := lk.aead.Open(nil, wrapped[:nonceLen], wrapped[nonceLen:], ad)
		if err != nil {
			return nil, ErrUnwrap
		}
		return dek, nil
	}
	return nil, fmt.Errorf("%w %s (this process holds %s)", ErrUnknownKEK, printableID(kekID), strings.Join(k.IDs(), ", "))
}

// printableID shows a kek id from a record only when it has the form of
// one, so that a damaged record cannot put arbitrary bytes into a message.
func printableID(id string) string {
	if len(id) <= 64 {
		ok := true
		for _, c := range id {
			if !(c == ':' || c == '-' || c == '_' || c == '/' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				ok = false
				break
			}
		}
		if ok {
			return fmt.Sprintf("%q", id)
		}
	}
	return "(malformed id)"
}
