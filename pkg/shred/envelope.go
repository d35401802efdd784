package shred

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tink-crypto/tink-go/v2/daead/subtle"
)

// The envelope's layout (see the package documentation).
const (
	// ModeDeterministic marks an AES-256-SIV ciphertext: equal plaintexts
	// under one data key give equal ciphertexts.
	ModeDeterministic byte = 'D'
	// ModeRandomised marks an AES-256-GCM ciphertext with a random nonce.
	ModeRandomised byte = 'R'

	// HeaderLen is the length of the header: magic (3), mode (1), key id
	// (16), key version (4). The header is the associated data of the
	// encryption.
	HeaderLen = 24
	// StringPrefix starts the string form of a ciphertext, followed by the
	// unpadded URL-safe base64 of the binary envelope.
	StringPrefix = "cg1:"

	dekLen   = 32
	sivLen   = 16 // synthetic IV of AES-SIV
	nonceLen = 12 // AES-GCM nonce
	tagLen   = 16 // AES-GCM tag

	infoSIV = "consentgate/v1/aes-siv"
	infoGCM = "consentgate/v1/aes-gcm"
)

var magic = [3]byte{'c', 'g', 0x01}

// b64 is strict: a string whose unused trailing bits are not zero is not
// the canonical form of any envelope and is refused, so that no two strings
// decrypt to the same value (decodeString refuses CR and LF too).
var b64 = base64.RawURLEncoding.Strict()

// Errors of the envelope. None quotes the ciphertext, the plaintext or a key.
var (
	// ErrNotCiphertext: the bytes or string are not a consentgate
	// ciphertext of a known format version (wrong magic, unknown mode,
	// too short, bad base64).
	ErrNotCiphertext = errors.New("shred: not a consentgate ciphertext")
	// ErrDecrypt: the ciphertext is well formed but does not authenticate
	// under its data key (modified, or another key's).
	ErrDecrypt = errors.New("shred: ciphertext does not authenticate")
	// ErrWrongKey: the ciphertext names another data key (id or version)
	// than the one it was given to.
	ErrWrongKey = errors.New("shred: ciphertext is not under this data key")
	// ErrErased: the data key of the ciphertext was destroyed (its subject
	// was erased) or is unknown in a fully read keys topic.
	ErrErased = errors.New("shred: data key erased")
)

// Header is the parsed header of a ciphertext.
type Header struct {
	Mode    byte     // ModeDeterministic or ModeRandomised
	KeyID   [16]byte // the data key's id
	Version uint32   // the data key's version for its subject
}

// Deterministic reports whether the ciphertext is AES-SIV.
func (h Header) Deterministic() bool { return h.Mode == ModeDeterministic }

func (h Header) bytes() []byte {
	b := make([]byte, HeaderLen)
	copy(b, magic[:])
	b[3] = h.Mode
	copy(b[4:20], h.KeyID[:])
	binary.BigEndian.PutUint32(b[20:24], h.Version)
	return b
}

// Parse reads the header of a binary ciphertext, checking the magic, the
// mode and that the body is long enough for the mode. It does not decrypt.
func Parse(c []byte) (Header, error) {
	if len(c) < HeaderLen || c[0] != magic[0] || c[1] != magic[1] || c[2] != magic[2] {
		return Header{}, ErrNotCiphertext
	}
	h := Header{Mode: c[3], Version: binary.BigEndian.Uint32(c[20:24])}
	copy(h.KeyID[:], c[4:20])
	body := len(c) - HeaderLen
	switch h.Mode {
	case ModeDeterministic:
		if body < sivLen {
			return Header{}, ErrNotCiphertext
		}
	case ModeRandomised:
		if body < nonceLen+tagLen {
			return Header{}, ErrNotCiphertext
		}
	default:
		return Header{}, ErrNotCiphertext
	}
	return h, nil
}

// ParseString reads the header of a ciphertext in the string form.
func ParseString(s string) (Header, error) {
	_, h, err := decodeString(s)
	return h, err
}

func decodeString(s string) ([]byte, Header, error) {
	rest, ok := strings.CutPrefix(s, StringPrefix)
	// The decoder skips CR and LF: refused here, so that a ciphertext has
	// one string form only.
	if !ok || strings.ContainsAny(rest, "\r\n") {
		return nil, Header{}, ErrNotCiphertext
	}
	c, err := b64.DecodeString(rest)
	if err != nil {
		return nil, Header{}, ErrNotCiphertext
	}
	h, err := Parse(c)
	if err != nil {
		return nil, Header{}, err
	}
	return c, h, nil
}

// IsCiphertext reports whether s has the string form of a ciphertext (it
// does not decrypt it).
func IsCiphertext(s string) bool {
	_, err := ParseString(s)
	return err == nil
}

// IsCiphertextBytes reports whether c has the binary form of a ciphertext.
func IsCiphertextBytes(c []byte) bool {
	_, err := Parse(c)
	return err == nil
}

// DataKey is one data key of one subject, ready to encrypt and decrypt. It
// is safe for concurrent use. Its key material is never printed: String
// and the fmt verbs show the id and version only.
type DataKey struct {
	Subject   string
	ID        [16]byte
	Version   uint32
	CreatedAt time.Time

	siv *subtle.AESSIV
	gcm cipher.AEAD
}

// NewDataKey builds a data key from its 32 bytes of key material (the
// DEK). The AES-SIV and AES-GCM keys are derived from it with HKDF-SHA256.
// dek is not retained.
func NewDataKey(subject string, id [16]byte, version uint32, createdAt time.Time, dek []byte) (*DataKey, error) {
	if len(dek) != dekLen {
		return nil, fmt.Errorf("shred: data key material is %d bytes, want %d", len(dek), dekLen)
	}
	sivKey, err := hkdf.Key(sha256.New, dek, nil, infoSIV, subtle.AESSIVKeySize)
	if err != nil {
		return nil, fmt.Errorf("shred: derive the AES-SIV key: %w", err)
	}
	siv, err := subtle.NewAESSIV(sivKey)
	if err != nil {
		return nil, errors.New("shred: AES-SIV key refused")
	}
	gcmKey, err := hkdf.Key(sha256.New, dek, nil, infoGCM, 32)
	if err != nil {
		return nil, fmt.Errorf("shred: derive the AES-GCM key: %w", err)
	}
	gcm, err := newGCM(gcmKey)
	if err != nil {
		return nil, err
	}
	return &DataKey{Subject: subject, ID: id, Version: version, CreatedAt: createdAt, siv: siv, gcm: gcm}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("shred: AES key refused")
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, errors.New("shred: AES-GCM refused")
	}
	return gcm, nil
}

// String names the key by id and version, never its material or subject.
func (k *DataKey) String() string {
	return fmt.Sprintf("data key %x v%d", k.ID, k.Version)
}

// GoString is String, so that %#v prints no key material either.
func (k *DataKey) GoString() string { return k.String() }

func (k *DataKey) header(mode byte) Header {
	return Header{Mode: mode, KeyID: k.ID, Version: k.Version}
}

// EncryptBytes encrypts plaintext into the binary envelope: AES-256-SIV
// when deterministic, AES-256-GCM with a random nonce otherwise.
func (k *DataKey) EncryptBytes(plaintext []byte, deterministic bool) ([]byte, error) {
	if deterministic {
		hdr := k.header(ModeDeterministic).bytes()
		body, err := k.siv.EncryptDeterministically(plaintext, hdr)
		if err != nil {
			return nil, errors.New("shred: AES-SIV encryption failed")
		}
		return append(hdr, body...), nil
	}
	hdr := k.header(ModeRandomised).bytes()
	out := make([]byte, HeaderLen+nonceLen, HeaderLen+nonceLen+len(plaintext)+tagLen)
	copy(out, hdr)
	nonce := out[HeaderLen : HeaderLen+nonceLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, errors.New("shred: no randomness for a nonce")
	}
	return k.gcm.Seal(out, nonce, plaintext, hdr), nil
}

// EncryptString encrypts plaintext into the string form, "cg1:" followed
// by the unpadded URL-safe base64 of the binary envelope.
func (k *DataKey) EncryptString(plaintext string, deterministic bool) (string, error) {
	c, err := k.EncryptBytes([]byte(plaintext), deterministic)
	if err != nil {
		return "", err
	}
	return StringPrefix + b64.EncodeToString(c), nil
}

// DecryptBytes decrypts a binary envelope made under k. It returns
// ErrNotCiphertext, ErrWrongKey or ErrDecrypt when it cannot.
func (k *DataKey) DecryptBytes(c []byte) ([]byte, error) {
	h, err := Parse(c)
	if err != nil {
		return nil, err
	}
	return k.open(h, c)
}

// DecryptString decrypts the string form of a ciphertext made under k.
func (k *DataKey) DecryptString(s string) (string, error) {
	c, h, err := decodeString(s)
	if err != nil {
		return "", err
	}
	p, err := k.open(h, c)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

func (k *DataKey) open(h Header, c []byte) ([]byte, error) {
	if h.KeyID != k.ID || h.Version != k.Version {
		return nil, ErrWrongKey
	}
	hdr, body := c[:HeaderLen], c[HeaderLen:]
	switch h.Mode {
	case ModeDeterministic:
		p, err := k.siv.DecryptDeterministically(body, hdr)
		if err != nil {
			return nil, ErrDecrypt
		}
		return nonNil(p), nil
	default: // ModeRandomised; Parse refused the rest
		p, err := k.gcm.Open(nil, body[:nonceLen], body[nonceLen:], hdr)
		if err != nil {
			return nil, ErrDecrypt
		}
		return nonNil(p), nil
	}
}

func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}
