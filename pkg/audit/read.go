package audit

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
)

// Read decodes one audit record of either version from its
// single-object encoding. The two versions are not compatible (version 2
// has one record per input event; version 1 had one per event and stream),
// so the record is decoded with its writer schema, found in cat by the
// fingerprint of its header, never resolved into the latest version (which
// avrocodec.Codec.Decode would do, and fail at for a version 1 record).
//
// A version 1 record becomes a Record with Version 1, outcome
// DECIDED and the one decision it holds: its purpose is the
// DecidingPurpose, Purposes is empty (version 1 did not list the stream's
// purposes) and Consents holds the deciding purpose's change.
func Read(cat *avrocodec.Catalog, data []byte) (a *Record, err error) {
	if len(data) < 10 || data[0] != 0xC3 || data[1] != 0x01 {
		return nil, fmt.Errorf("audit record: not in the single-object encoding")
	}
	fp := binary.LittleEndian.Uint64(data[2:10])
	s, ok := cat.SchemaByFingerprint(fp)
	if !ok {
		return nil, fmt.Errorf("audit record: no catalog schema has fingerprint %016x", fp)
	}
	if s.FullName != Schema {
		return nil, fmt.Errorf("audit record: written with %s, not %s", s.FullName, Schema)
	}
	defer func() {
		if p := recover(); p != nil {
			a, err = nil, fmt.Errorf("audit record: the decoder panicked on %s version %d data", s.FullName, s.Version)
		}
	}()
	native, rest, err := s.Codec().NativeFromBinary(data[10:])
	if err != nil {
		return nil, fmt.Errorf("audit record: %s version %d: %w", s.FullName, s.Version, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("audit record: %d bytes after the datum", len(rest))
	}
	v, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("audit record: did not decode to a record")
	}
	// The shape, not the file's version number, tells the versions apart
	// (SCHEMAS_DIR may number them otherwise).
	if _, v2 := v["decisions"]; v2 {
		return auditFromV2(v), nil
	}
	if _, v1 := v["stream"]; v1 {
		return auditFromV1(v), nil
	}
	return nil, fmt.Errorf("audit record: %s version %d is neither version 1 nor 2 of the audit record", s.FullName, s.Version)
}

func auditFromV2(v map[string]any) *Record {
	a := &Record{
		Version:          2,
		EventID:          nString(v["event_id"]),
		SubjectID:        nString(v["subject_id"]),
		Outcome:          Outcome(nString(v["outcome"])),
		DeadLetterReason: nString(v["dead_letter_reason"]),
		EventSchema:      nString(v["event_schema"]),
		PolicyVersion:    nString(v["policy_version"]),
		SourceTopic:      nString(v["source_topic"]),
		SourcePartition:  nInt(v["source_partition"]),
		SourceOffset:     nLong(v["source_offset"]),
		ProcessedAt:      nTime(v["processed_at"]),
	}
	list, _ := v["decisions"].([]any)
	for _, item := range list {
		m, _ := item.(map[string]any)
		d := StreamDecision{
			Stream:          nString(m["stream"]),
			Purposes:        nStrings(m["purposes"]),
			Decision:        decision.Outcome(nString(m["decision"])),
			Reason:          nString(m["reason"]),
			DecidingPurpose: nString(m["deciding_purpose"]),
			TreatedFields:   nStrings(m["treated_fields"]),
		}
		cs, _ := m["consents"].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			d.Consents = append(d.Consents, decision.PurposeConsent{Purpose: nString(cm["purpose"]), ChangeID: nString(cm["consent_change_id"]), CapturedAt: nTime(cm["consent_captured_at"])})
		}
		a.Decisions = append(a.Decisions, d)
	}
	return a
}

func auditFromV1(v map[string]any) *Record {
	d := StreamDecision{
		Stream:          nString(v["stream"]),
		Decision:        decision.Outcome(nString(v["decision"])),
		Reason:          nString(v["reason"]),
		DecidingPurpose: nString(v["purpose"]),
		TreatedFields:   nStrings(v["treated_fields"]),
		Consents:        []decision.PurposeConsent{{Purpose: nString(v["purpose"]), ChangeID: nString(v["consent_change_id"]), CapturedAt: nTime(v["consent_captured_at"])}},
	}
	return &Record{
		Version:         1,
		EventID:         nString(v["event_id"]),
		SubjectID:       nString(v["subject_id"]),
		Outcome:         Decided,
		EventSchema:     nString(v["event_schema"]),
		PolicyVersion:   nString(v["policy_version"]),
		SourceTopic:     nString(v["source_topic"]),
		SourcePartition: nInt(v["source_partition"]),
		SourceOffset:    nLong(v["source_offset"]),
		ProcessedAt:     nTime(v["processed_at"]),
		Decisions:       []StreamDecision{d},
	}
}

// nString reads a string, or a ["null","string"] union ("" for null).
func nString(v any) string {
	s, _ := avrocodec.Unwrap(v).(string)
	return s
}

func nStrings(v any) []string {
	list, _ := v.([]any)
	if len(list) == 0 {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i], _ = s.(string)
	}
	return out
}

func nInt(v any) int32 {
	n, _ := v.(int32)
	return n
}

func nLong(v any) int64 {
	n, _ := v.(int64)
	return n
}

// nTime reads a timestamp-millis, or a union of null and one (zero for null).
func nTime(v any) time.Time {
	t, _ := avrocodec.Unwrap(v).(time.Time)
	return t
}
