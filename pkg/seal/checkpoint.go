package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// KeyName is the name of the sealer's signing key: the name in its note
// signer and verifier keys and on each checkpoint's signature line.
const KeyName = "consentgate-audit"

// OriginPrefix starts the origin line of every checkpoint; the audit topic
// and partition follow, as in "consentgate audit consent.audit/0".
const OriginPrefix = "consentgate audit "

// MaxNoteSize bounds the checkpoint notes Open parses.
const MaxNoteSize = 16 << 10

// Errors of Open, VerifyProof and CheckConsistency; test with errors.Is.
var (
	// ErrMalformed: not a checkpoint note of this format (or a proof that
	// does not decode).
	ErrMalformed = errors.New("malformed")
	// ErrBadSignature: a known key's signature does not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKey: no signature by a trusted key.
	ErrUnknownKey = errors.New("not signed by a trusted key")
	// ErrInconsistent: two checkpoints are not of one append-only tree, or
	// a proof does not prove what it claims.
	ErrInconsistent = errors.New("inconsistent")
)

// A Checkpoint is a signed statement of an audit partition's tree: the
// first Size records of the partition from offset Base on have the Merkle
// tree root Root. It maps one to one onto ledger.Checkpoint's AuditTopic,
// Partition, Base, Size and Root.
//
// Its note text (what is signed; see Text) is four lines, each ending in a
// newline, in the C2SP tlog-checkpoint style:
//
//	consentgate audit <topic>/<partition>
//	<size>
//	<root>
//	base <base>
//
// The first line is the origin: OriginPrefix, the audit topic's name
// (Kafka topic characters a-z A-Z 0-9 . _ -, 1 to 249 of them), a slash and
// the partition in decimal. Size and base are decimal without sign or
// leading zeros; root is the 32-byte root hash in standard base64 with
// padding. The base offset is the one extension line, so that lines 1 to 3
// are a C2SP checkpoint that generic tooling reads. The note's signature
// lines follow (sumdb/note format: a blank line, then "— <key name>
// <base64 of key hash and Ed25519 signature>").
type Checkpoint struct {
	Topic     string
	Partition int32
	Base      int64
	Size      int64
	Root      tlog.Hash
}

// Origin is the checkpoint's origin line, without its newline.
func (c Checkpoint) Origin() string { return Origin(c.Topic, c.Partition) }

// Origin is the origin line of the partition's checkpoints.
func Origin(topic string, partition int32) string {
	return OriginPrefix + topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// Text is the checkpoint's note text, the signed bytes.
func (c Checkpoint) Text() ([]byte, error) {
	if err := validOrigin(c.Topic, c.Partition); err != nil {
		return nil, err
	}
	if c.Base < 0 || c.Size < 0 {
		return nil, fmt.Errorf("seal: checkpoint with base %d and size %d", c.Base, c.Size)
	}
	return fmt.Appendf(nil, "%s\n%d\n%s\nbase %d\n", c.Origin(), c.Size, base64.StdEncoding.EncodeToString(c.Root[:]), c.Base), nil
}

func validOrigin(topic string, partition int32) error {
	if len(topic) == 0 || len(topic) > 249 {
		return fmt.Errorf("seal: topic name of %d bytes", len(topic))
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("seal: topic name with byte %#x", c)
		}
	}
	if partition < 0 {
		return fmt.Errorf("seal: partition %d", partition)
	}
	return nil
}

// Sign signs the checkpoint and returns the note as published.
func Sign(s note.Signer, c Checkpoint) ([]byte, error) {
	if s == nil {
		return nil, errors.New("seal: nil signer")
	}
	text, err := c.Text()
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		return nil, fmt.Errorf("seal: sign checkpoint: %w", err)
	}
	return msg, nil
}

// Open verifies a checkpoint note's signature with the trusted verifiers
// and parses its text strictly: exactly the four lines of Checkpoint's
// format, canonical numbers and hash. Other signatures (by keys not in
// verifiers, such as a witness's) are allowed as long as one trusted key
// signed. Errors wrap ErrMalformed, ErrBadSignature or ErrUnknownKey.
func Open(msg []byte, verifiers note.Verifiers) (Checkpoint, error) {
	if len(msg) > MaxNoteSize {
		return Checkpoint{}, fmt.Errorf("seal: checkpoint note of %d bytes: %w", len(msg), ErrMalformed)
	}
	if verifiers == nil {
		return Checkpoint{}, fmt.Errorf("seal: no trusted keys: %w", ErrUnknownKey)
	}
	n, err := note.Open(msg, verifiers)
	if err != nil {
		var bad *note.InvalidSignatureError
		var unverified *note.UnverifiedNoteError
		switch {
		case errors.As(err, &bad):
			return Checkpoint{}, fmt.Errorf("seal: checkpoint signature by key %s+%08x does not verify: %w", bad.Name, bad.Hash, ErrBadSignature)
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("seal: checkpoint: %w", ErrUnknownKey)
		default:
			return Checkpoint{}, fmt.Errorf("seal: checkpoint note: %v: %w", err, ErrMalformed)
		}
	}
	return ParseText([]byte(n.Text))
}

// ParseText parses a checkpoint's note text (no signatures) strictly. It
// verifies nothing: use Open for a signed note.
func ParseText(text []byte) (Checkpoint, error) {
	bad := func(what string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("seal: checkpoint text: %s: %w", what, ErrMalformed)
	}
	if !bytes.HasSuffix(text, []byte("\n")) {
		return bad("no final newline")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) != 4 {
		return bad(fmt.Sprintf("%d lines, want 4", len(lines)))
	}
	origin, ok := strings.CutPrefix(lines[0], OriginPrefix)
	if !ok {
		return bad("origin is not a consentgate audit partition")
	}
	slash := strings.LastIndexByte(origin, '/')
	if slash < 0 {
		return bad("origin has no partition")
	}
	topic := origin[:slash]
	partition, ok := canonicalInt(origin[slash+1:], 1<<31-1)
	if !ok {
		return bad("origin partition")
	}
	if err := validOrigin(topic, int32(partition)); err != nil {
		return bad("origin topic")
	}
	size, ok := canonicalInt(lines[1], 1<<63-1)
	if !ok {
		return bad("size")
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return bad("root hash")
	}
	b, ok := strings.CutPrefix(lines[3], "base ")
	if !ok {
		return bad("no base line")
	}
	base, ok := canonicalInt(b, 1<<63-1)
	if !ok {
		return bad("base")
	}
	c := Checkpoint{Topic: topic, Partition: int32(partition), Base: base, Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// canonicalInt parses a non-negative decimal without sign or leading zeros.
func canonicalInt(s string, limit int64) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > limit {
		return 0, false
	}
	return n, true
}

// CheckConsistency checks, from the two checkpoints and a consistency proof
// alone (no records), that old's tree is a prefix of new's: same partition
// and base, old.Size <= new.Size, and tlog.CheckTree of the proof. The
// proof is what Tree.ProveTree(old.Size, new.Size) returns on a tree that
// has new's root; for equal sizes it is empty and the roots must be equal.
// Errors wrap ErrInconsistent.
func CheckConsistency(old, new Checkpoint, proof tlog.TreeProof) error {
	switch {
	case old.Topic != new.Topic || old.Partition != new.Partition:
		return fmt.Errorf("seal: checkpoints of %s and %s: %w", old.Origin(), new.Origin(), ErrInconsistent)
	case old.Base != new.Base:
		return fmt.Errorf("seal: checkpoints of base %d and %d: %w", old.Base, new.Base, ErrInconsistent)
	case old.Size > new.Size:
		return fmt.Errorf("seal: checkpoint of size %d after one of size %d: %w", new.Size, old.Size, ErrInconsistent)
	case old.Size == new.Size:
		if old.Root != new.Root || len(proof) != 0 {
			return fmt.Errorf("seal: two checkpoints of size %d with different roots: %w", old.Size, ErrInconsistent)
		}
		return nil
	case old.Size == 0:
		return nil // the empty tree is a prefix of every tree
	}
	if err := tlog.CheckTree(proof, new.Size, new.Root, old.Size, old.Root); err != nil {
		return fmt.Errorf("seal: tree of size %d is not a prefix of the tree of size %d: %w", old.Size, new.Size, ErrInconsistent)
	}
	return nil
}

// GenerateKey makes a new Ed25519 key pair named KeyName in note's key
// format: skey ("PRIVATE+KEY+consentgate-audit+...") for the sealer only,
// vkey ("consentgate-audit+<hash>+<key>") for every verifier.
func GenerateKey(rand io.Reader) (skey, vkey string, err error) {
	return note.GenerateKey(rand, KeyName)
}

// ParseSigner reads a signer key from a key file's contents (surrounding
// white space is ignored). Its errors never include the key.
func ParseSigner(contents []byte) (note.Signer, error) {
	s, err := note.NewSigner(string(bytes.TrimSpace(contents)))
	if err != nil {
		return nil, errors.New("seal: signer key file does not hold a note signer key (PRIVATE+KEY+name+hash+key)")
	}
	return s, nil
}

// ParseVerifiers reads verifier keys, one a line ("name+hash+key"; blank
// lines and lines starting with # are skipped), as in a file of trusted
// keys: more than one when keys were rotated.
func ParseVerifiers(contents []byte) (note.Verifiers, error) {
	var list []note.Verifier
	for i, line := range strings.Split(string(contents), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "PRIVATE+") {
			return nil, fmt.Errorf("seal: line %d of the verifier keys is a private key", i+1)
		}
		v, err := note.NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("seal: line %d of the verifier keys: %v", i+1, err)
		}
		list = append(list, v)
	}
	if len(list) == 0 {
		return nil, errors.New("seal: no verifier key")
	}
	return note.VerifierList(list...), nil
}
