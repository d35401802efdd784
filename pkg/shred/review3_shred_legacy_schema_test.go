package shred

import (
	"crypto/rand"
	"errors"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
)

// review3LegacyKeyEvent is schemas/subject_key.avsc as the keys topic's
// first writers had it (commit 57d9c97), before erasure_captured_at.
const review3LegacyKeyEvent = `
{
  "type": "record",
  "name": "KeyEvent",
  "namespace": "consentgate.keys",
  "doc": "One record of the compacted keys topic (consent.keys), the system of record of the customers' data keys (crypto-shredding, pkg/shred). DATA_KEY: one data key of a subject, wrapped by a key-encryption key; Kafka key 'key:' + hex(key_id) + ':' + subject_id; never updated, destroyed by a tombstone with the same Kafka key. SUBJECT_ERASED: the subject was erased; Kafka key 'erased:' + subject_id; every DATA_KEY of the subject at a lower offset of the same partition is dead. Every record of a subject goes to the partition murmur2(subject_id) mod the partition count.",
  "fields": [
    {"name": "kind", "type": {"type": "enum", "name": "KeyEventKind", "doc": "DATA_KEY: a data key; SUBJECT_ERASED: an erasure marker.", "symbols": ["DATA_KEY", "SUBJECT_ERASED"]}, "doc": "What the record is."},
    {"name": "subject_id", "type": "string", "doc": "The customer the key or the erasure is about.", "data_category": "user.id"},
    {"name": "key_id", "type": ["null", {"type": "fixed", "name": "KeyID", "size": 16}], "default": null, "doc": "DATA_KEY: the random id of the data key, written into every ciphertext made under it; null for SUBJECT_ERASED."},
    {"name": "version", "type": "int", "default": 0, "doc": "DATA_KEY: 1, 2, ... per subject (a rotation adds one); 0 for SUBJECT_ERASED."},
    {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "DATA_KEY: when the key was created; SUBJECT_ERASED: when consent-sync applied the erasure."},
    {"name": "kek_id", "type": ["null", "string"], "default": null, "doc": "DATA_KEY: the key-encryption key that wrapped the data key, e.g. 'local:' + 16 hex digits; null for SUBJECT_ERASED."},
    {"name": "wrapped_key", "type": ["null", "bytes"], "default": null, "doc": "DATA_KEY: the data key wrapped by kek_id (for the local provider AES-256-GCM nonce || ciphertext || tag, the associated data binding it to key_id, version and subject_id); null for SUBJECT_ERASED."},
    {"name": "change_id", "type": ["null", "string"], "default": null, "doc": "SUBJECT_ERASED: the change_id of the ERASE consent change; null for DATA_KEY."}
  ]
}
`

// The KeyEvent schema was changed in place (erasure_captured_at added, no
// subject_key.v1.avsc kept), so a keys topic written before the change
// holds records whose single-object fingerprint the catalog no longer
// knows. The ring skips them all: every data key made before the upgrade
// is unknown, so every ciphertext under it reads as ErrErased (LOSES all
// the data encrypted so far), and a marker written before the field (which
// 4b3affd means to order by created_at) is skipped too: the legacy branch
// of Ring.apply never runs.
func TestReview3ShredKeysWrittenBeforeTheSchemaChangeAreLost(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"subject_key.avsc": {Data: []byte(review3LegacyKeyEvent)}})
	if err != nil {
		t.Fatal(err)
	}
	legacy := avrocodec.New(cat, nil)

	const subject = "subject-legacy-1"
	var id [16]byte
	_, _ = rand.Read(id[:])
	dek := make([]byte, dekLen)
	_, _ = rand.Read(dek)
	kekID, wrapped, err := kek.Wrap(tctx(t), dek, dekAD(id, 1, subject))
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().UTC().Truncate(time.Millisecond)
	val, err := legacy.EncodeSingle(SchemaName, map[string]any{
		"kind": KindDataKey, "subject_id": subject, "key_id": map[string]any{keyIDUnion: id[:]}, "version": int32(1),
		"created_at": created, "kek_id": map[string]any{"string": kekID}, "wrapped_key": map[string]any{"bytes": wrapped},
		"change_id": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: keysTopic, Balancer: Balancer{}, RequiredAcks: kafka.RequireAll,
		Transport: b.Security.Transport("review3")}
	defer w.Close()
	if err := w.WriteMessages(tctx(t), kafka.Message{Key: dataKeyKafkaKey(id, subject), Value: val}); err != nil {
		t.Fatal(err)
	}
	dk, err := NewDataKey(subject, id, 1, created, dek)
	if err != nil {
		t.Fatal(err)
	}
	c := encrypt(t, dk, "encrypted-before-the-upgrade@example.com", false)

	ring := openRing(t, ringConfig(b, kek)) // the upgraded service
	if _, err := ring.DecryptString(tctx(t), c); err != nil {
		t.Fatalf("a ciphertext under a key written before the KeyEvent change (subject never erased) does not decrypt "+
			"after the upgrade (erased: %v, records skipped: %d): the old records' fingerprint is no longer in the catalog",
			errors.Is(err, ErrErased), ring.Skipped())
	}
}
