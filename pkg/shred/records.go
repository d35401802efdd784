package shred

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/schemas"
)

// DefaultTopic is the keys topic's default name.
const DefaultTopic = "consent.keys"

// SchemaName is the full name of the keys topic's records
// (schemas/subject_key.avsc).
const SchemaName = "consentgate.keys.KeyEvent"

// The record kinds.
const (
	KindDataKey       = "DATA_KEY"
	KindSubjectErased = "SUBJECT_ERASED"
)

const (
	dataKeyPrefix = "key:"
	erasedPrefix  = "erased:"
	keyIDUnion    = "consentgate.keys.KeyID"
)

// Balancer puts every record of a subject into partition murmur2(subject)
// mod the partition count: the hash of kafka-go's Murmur2Balancer (and of
// the Java client) applied to the subject's bytes, which it reads from the
// keys topic's Kafka key ("key:<hex id>:<subject>" or "erased:<subject>").
// A Kafka key of another form is hashed whole.
type Balancer struct{}

// Balance implements kafka.Balancer.
func (Balancer) Balance(msg kafka.Message, partitions ...int) int {
	return balance(subjectOfKey(msg.Key), partitions)
}

func balance(subject string, partitions []int) int {
	return kafka.Murmur2Balancer{Consistent: true}.Balance(kafka.Message{Key: []byte(subject)}, partitions...)
}

// Partition returns the partition of a subject's records in a keys topic
// of n partitions (numbered 0..n-1).
func Partition(subject string, n int) int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return balance(subject, parts)
}

func subjectOfKey(key []byte) string {
	k := string(key)
	if rest, ok := strings.CutPrefix(k, erasedPrefix); ok {
		return rest
	}
	if rest, ok := strings.CutPrefix(k, dataKeyPrefix); ok && len(rest) >= 33 && rest[32] == ':' {
		return rest[33:]
	}
	return k
}

func dataKeyKafkaKey(id [16]byte, subject string) []byte {
	return []byte(dataKeyPrefix + hex.EncodeToString(id[:]) + ":" + subject)
}

func erasedKafkaKey(subject string) []byte { return []byte(erasedPrefix + subject) }

// parseKafkaKey tells the two key forms apart; ok is false for any other.
func parseKafkaKey(key []byte) (erased bool, id [16]byte, subject string, ok bool) {
	k := string(key)
	if rest, found := strings.CutPrefix(k, erasedPrefix); found {
		return true, id, rest, true
	}
	rest, found := strings.CutPrefix(k, dataKeyPrefix)
	if !found || len(rest) < 33 || rest[32] != ':' {
		return false, id, "", false
	}
	if _, err := hex.Decode(id[:], []byte(rest[:32])); err != nil {
		return false, id, "", false
	}
	return false, id, rest[33:], true
}

// event is a decoded KeyEvent.
type event struct {
	kind      string
	subject   string
	keyID     [16]byte
	hasKeyID  bool
	version   uint32
	createdAt time.Time
	kekID     string
	wrapped   []byte
	changeID  string
	// erasure: SUBJECT_ERASED, the ERASE; DATA_KEY, the newest erasure
	// the consent state knew when the key was made (zero: none).
	erasure Erasure
}

var errOtherFormat = errors.New("not a " + SchemaName)

type codec struct{ c *avrocodec.Codec }

func newCodec() (*codec, error) {
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		return nil, err
	}
	if _, ok := cat.SchemaByName(SchemaName); !ok {
		return nil, fmt.Errorf("schema catalog lacks %s", SchemaName)
	}
	return &codec{c: avrocodec.New(cat, nil)}, nil
}

func (c *codec) encode(e event) ([]byte, error) {
	v := map[string]any{
		"kind":                e.kind,
		"subject_id":          e.subject,
		"key_id":              nil,
		"version":             int32(e.version),
		"created_at":          e.createdAt,
		"kek_id":              nil,
		"wrapped_key":         nil,
		"change_id":           nil,
		"erasure_captured_at": nil,
	}
	if e.hasKeyID {
		v["key_id"] = map[string]any{keyIDUnion: e.keyID[:]}
	}
	if e.kekID != "" {
		v["kek_id"] = map[string]any{"string": e.kekID}
	}
	if e.wrapped != nil {
		v["wrapped_key"] = map[string]any{"bytes": e.wrapped}
	}
	if e.changeID != "" {
		v["change_id"] = map[string]any{"string": e.changeID}
	}
	if !e.erasure.IsZero() {
		v["change_id"] = map[string]any{"string": e.erasure.ChangeID}
		v["erasure_captured_at"] = map[string]any{"long.timestamp-millis": e.erasure.At.UTC()}
	}
	b, err := c.c.EncodeSingle(SchemaName, v)
	if err != nil {
		// The error may quote the value (a subject id): not passed on.
		return nil, errors.New("encode a " + SchemaName + " record failed")
	}
	return b, nil
}

// decode reads a KeyEvent. Any failure is errOtherFormat, without the
// record's content.
func (c *codec) decode(data []byte) (event, error) {
	rec, err := c.c.Decode(context.Background(), data) // single-object framing: no registry request
	if err != nil || rec.Schema == nil || rec.Schema.FullName != SchemaName {
		return event{}, errOtherFormat
	}
	v := rec.Value
	var e event
	var ok bool
	if e.kind, ok = v["kind"].(string); !ok {
		return event{}, errOtherFormat
	}
	if e.subject, ok = v["subject_id"].(string); !ok {
		return event{}, errOtherFormat
	}
	if b, isBytes := avrocodec.Unwrap(v["key_id"]).([]byte); isBytes && len(b) == 16 {
		copy(e.keyID[:], b)
		e.hasKeyID = true
	}
	if n, isInt := v["version"].(int32); isInt && n >= 0 {
		e.version = uint32(n)
	}
	if t, isTime := v["created_at"].(time.Time); isTime {
		e.createdAt = t
	}
	e.kekID, _ = avrocodec.Unwrap(v["kek_id"]).(string)
	e.wrapped, _ = avrocodec.Unwrap(v["wrapped_key"]).([]byte)
	e.changeID, _ = avrocodec.Unwrap(v["change_id"]).(string)
	if t, isTime := avrocodec.Unwrap(v["erasure_captured_at"]).(time.Time); isTime {
		e.erasure = Erasure{At: t.UTC(), ChangeID: e.changeID}
	}
	return e, nil
}
