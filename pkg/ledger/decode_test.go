package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

func decodeCodec(t *testing.T) *avrocodec.Codec {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return avrocodec.New(cat, nil)
}

func TestDecoderTurnsEachTopicsRecordsIntoRows(t *testing.T) {
	ctx := context.Background()
	codec := decodeCodec(t)
	at := time.UnixMilli(1_700_000_000_123).UTC()
	change := consent.Change{ChangeID: "c-1", SubjectID: "s-1", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, ExcludedCategories: []string{"user.health.*"}, Source: "banner", NoticeVersion: "v3",
		CapturedAt: at, ExpiresAt: at.Add(time.Hour)}
	changeBytes, err := codec.EncodeSingle(ChangeSchema, change.Native())
	if err != nil {
		t.Fatal(err)
	}
	noticeBytes, err := codec.EncodeSingle(NoticeSchema, map[string]any{
		"notice_id": "rev-c-2", "subject_id": "s-1", "purposes": []any{"marketing"}, "action": "WITHDRAW",
		"since": at, "change_id": "c-2", "reason": "consent withdrawn", "issued_at": at.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	auditBytes, err := codec.EncodeSingle(audit.Schema, map[string]any{
		"event_id": map[string]any{"string": "e-1"}, "subject_id": map[string]any{"string": "s-1"}, "outcome": "DECIDED",
		"dead_letter_reason": nil, "event_schema": map[string]any{"string": "consentgate.events.PageView"},
		"policy_version": "p1", "source_topic": "customer.events", "source_partition": int32(2), "source_offset": int64(41),
		"processed_at": at, "decisions": []any{map[string]any{"stream": "compliant.marketing", "purposes": []any{"marketing"},
			"decision": "REDACTED", "reason": "granted_with_exclusions", "deciding_purpose": "marketing",
			"treated_fields": []any{"ip"}, "consents": []any{map[string]any{"purpose": "marketing",
				"consent_change_id": map[string]any{"string": "c-1"}, "consent_captured_at": map[string]any{"long.timestamp-millis": at}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var leafCalls int
	d := &Decoder{Codec: codec, LeafHash: func(topic string, p int32, off int64, key, value []byte) [32]byte {
		leafCalls++
		switch {
		case topic == "consent.audit" && p == 1 && off == 7 && string(key) == "s-1" && string(value) == string(auditBytes):
			return [32]byte{9}
		case topic == "consent.audit" && p == 0 && off == 8 && key == nil && string(value) == "secret@example.com not avro":
			return [32]byte{8}
		}
		t.Errorf("leaf hash asked for %s/%d@%d with other bytes than the record's", topic, p, off)
		return [32]byte{}
	}}
	var b Batch
	add := func(k TopicKind, m kafka.Message) {
		t.Helper()
		if err := d.Add(ctx, &b, k, m); err != nil {
			t.Fatalf("Add %v: %v", k, err)
		}
	}
	add(HoldsChanges, kafka.Message{Topic: "consent.changes", Partition: 0, Offset: 3, Time: at, Key: []byte("s-1"), Value: changeBytes})
	add(HoldsNotices, kafka.Message{Topic: "consent.revocations", Partition: 0, Offset: 4, Time: at, Value: noticeBytes})
	add(HoldsAudit, kafka.Message{Topic: "consent.audit", Partition: 1, Offset: 7, Time: at, Key: []byte("s-1"), Value: auditBytes})
	add(HoldsDeadLetters, kafka.Message{Topic: "customer.events.dlq", Partition: 0, Offset: 5, Time: at, Value: []byte("secret@example.com"),
		Headers: []kafka.Header{{Key: stream.HeaderDLQReason, Value: []byte("undecodable")}, {Key: stream.HeaderDLQError, Value: []byte("bad_magic")},
			{Key: stream.HeaderSourceTopic, Value: []byte("customer.events")}, {Key: stream.HeaderSourcePart, Value: []byte("1")},
			{Key: stream.HeaderSourceOffset, Value: []byte("99")}}})
	add(HoldsAudit, kafka.Message{Topic: "consent.audit", Partition: 0, Offset: 8, Time: at, Value: []byte("secret@example.com not avro")})
	add(HoldsChanges, kafka.Message{Topic: "consent.changes", Partition: 0, Offset: 9, Time: at, Value: noticeBytes})

	if len(b.Changes) != 1 || b.Changes[0].ChangeID != "c-1" || b.Changes[0].Purpose != "marketing" || b.Changes[0].Action != "GRANT" ||
		!b.Changes[0].CapturedAt.Equal(at) || !b.Changes[0].ExpiresAt.Equal(at.Add(time.Hour)) || b.Changes[0].Offset != 3 ||
		len(b.Changes[0].ExcludedCategories) != 1 || b.Changes[0].NoticeVersion != "v3" {
		t.Errorf("changes: %+v", b.Changes)
	}
	if len(b.Notices) != 1 || b.Notices[0].NoticeID != "rev-c-2" || b.Notices[0].Action != "WITHDRAW" || len(b.Notices[0].Purposes) != 1 ||
		!b.Notices[0].Since.Equal(at) || !b.Notices[0].IssuedAt.Equal(at.Add(time.Second)) {
		t.Errorf("notices: %+v", b.Notices)
	}
	if len(b.Audits) != 1 || b.Audits[0].Record.EventID != "e-1" || b.Audits[0].Record.SourceOffset != 41 || b.Audits[0].LeafHash != [32]byte{9} ||
		len(b.Audits[0].Record.Decisions) != 1 || b.Audits[0].Record.Decisions[0].Consents[0].ChangeID != "c-1" || leafCalls != 2 {
		t.Errorf("audits: %+v (leaf hash calls %d)", b.Audits, leafCalls)
	}
	if len(b.DeadLetters) != 1 || b.DeadLetters[0].Reason != "undecodable" || b.DeadLetters[0].SourceOffset != 99 || b.DeadLetters[0].SourcePartition != 1 {
		t.Errorf("dead letters: %+v", b.DeadLetters)
	}
	if len(b.Undecodable) != 2 || b.Undecodable[0].Offset != 8 || b.Undecodable[1].Offset != 9 ||
		!strings.Contains(b.Undecodable[1].Error, "want "+ChangeSchema) ||
		len(b.Undecodable[0].LeafHash) != 32 || b.Undecodable[0].LeafHash[0] != 8 || b.Undecodable[1].LeafHash != nil {
		t.Errorf("undecodable: %+v", b.Undecodable)
	}
	for _, u := range b.Undecodable {
		if strings.Contains(u.Error, "secret") {
			t.Errorf("an undecodable row's error quotes the record: %q", u.Error)
		}
	}
}

type downRegistry struct{}

func (downRegistry) Schema(context.Context, int) (string, error) {
	return "", avrocodec.ErrRegistryUnavailable
}

func TestDecoderReturnsTransientFailuresAndAddsNothing(t *testing.T) {
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	d := &Decoder{Codec: avrocodec.New(cat, downRegistry{})}
	var b Batch
	// Confluent framing: magic 0, schema id 7, then a payload.
	err = d.Add(context.Background(), &b, HoldsChanges, kafka.Message{Topic: "consent.changes", Value: []byte{0, 0, 0, 0, 7, 2, 'x'}})
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("registry out of reach: got %v, want ErrTransient", err)
	}
	if len(b.Changes)+len(b.Undecodable) != 0 {
		t.Fatalf("a transient failure added rows: %+v", b)
	}
}
