package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
)

// AuditFingerprint is the CRC-64-AVRO fingerprint of the Parsing Canonical
// Form of the consentgate.audit.AuditRecord schema (version 2,
// schemas/audit_record.v2.avsc) that the hand-written audit encoder
// (appendAudit) was written for, as the Avro specification defines both
// (avrocodec.Schema.Fingerprint); the single-object header carries it
// little-endian: C3 01 77 63 C4 B8 00 ED B2 4E. When the catalog's latest
// AuditRecord has another fingerprint (a changed schema, or SCHEMAS_DIR
// pointing at other files), the enforcer encodes audit records through
// goavro instead and logs that once at start.
//
// Version 1 (AuditFingerprintV1) is no longer written; ReadAudit still
// reads it.
const AuditFingerprint uint64 = 0x4eb2ed00b8c46377

// AuditFingerprintV1 is the fingerprint of version 1 of the audit record
// (schemas/audit_record.v1.avsc: one record per input event and stream),
// which the enforcer wrote before version 2. Records written before
// consentgate followed the specification carry goavro's fingerprint of the
// same schema, f1f9e5bfba6cfe4a, which the catalog still finds.
const AuditFingerprintV1 uint64 = 0x3013fbe04dc2c825

// AuditOutcome, AuditRecord and StreamDecision are the audit record as Go
// values; they live in pkg/audit so that the ledger and consentctl read
// records with the same types.
type (
	AuditOutcome   = audit.Outcome
	AuditRecord    = audit.Record
	StreamDecision = audit.StreamDecision
)

// Audit outcomes.
const (
	AuditDecided      = audit.Decided
	AuditDeadLettered = audit.DeadLettered
)

// errUnknownDecision is returned for an outcome that is not a symbol of the
// Decision enum (or an audit outcome not one of AuditOutcome); goavro
// rejects them too.
var errUnknownDecision = errors.New("decision is not a symbol of consentgate.audit.Decision")

var errUnknownOutcome = errors.New("outcome is not a symbol of consentgate.audit.AuditOutcome")

// appendAudit appends the single-object encoding of a (header with the
// fingerprint fp, then the Avro binary datum of version 2) to buf. It
// produces the bytes goavro's BinaryFromNative produces for auditNative(a).
func appendAudit(buf []byte, fp uint64, a *AuditRecord) ([]byte, error) {
	var outcome int64
	switch a.Outcome {
	case AuditDecided:
		outcome = 0
	case AuditDeadLettered:
		outcome = 1
	default:
		return buf, errUnknownOutcome
	}
	buf = append(buf, 0xC3, 0x01)
	buf = binary.LittleEndian.AppendUint64(buf, fp)
	buf = appendOptString(buf, a.EventID)
	buf = appendOptString(buf, a.SubjectID)
	buf = appendLong(buf, outcome)
	buf = appendOptString(buf, a.DeadLetterReason)
	buf = appendOptString(buf, a.EventSchema)
	buf = appendString(buf, a.PolicyVersion)
	buf = appendString(buf, a.SourceTopic)
	buf = appendLong(buf, int64(a.SourcePartition))
	buf = appendLong(buf, a.SourceOffset)
	buf = appendLong(buf, a.ProcessedAt.UnixMilli())
	if n := len(a.Decisions); n > 0 {
		buf = appendLong(buf, int64(n))
		for i := range a.Decisions {
			var err error
			if buf, err = appendDecision(buf, &a.Decisions[i]); err != nil {
				return buf, err
			}
		}
	}
	buf = appendLong(buf, 0) // end of the decisions
	return buf, nil
}

func appendDecision(buf []byte, d *StreamDecision) ([]byte, error) {
	var sym int64
	switch d.Decision {
	case decision.Passed:
		sym = 0
	case decision.Redacted:
		sym = 1
	case decision.Dropped:
		sym = 2
	default:
		return buf, errUnknownDecision
	}
	buf = appendString(buf, d.Stream)
	buf = appendStrings(buf, d.Purposes)
	buf = appendLong(buf, sym)
	buf = appendString(buf, d.Reason)
	buf = appendString(buf, d.DecidingPurpose)
	buf = appendStrings(buf, d.TreatedFields)
	if n := len(d.Consents); n > 0 {
		buf = appendLong(buf, int64(n))
		for _, c := range d.Consents {
			buf = appendString(buf, c.Purpose)
			if c.ChangeID == "" {
				buf = appendLong(buf, 0) // consent_change_id: null
				buf = appendLong(buf, 0) // consent_captured_at: null
			} else {
				buf = appendLong(buf, 1)
				buf = appendString(buf, c.ChangeID)
				buf = appendLong(buf, 1)
				buf = appendLong(buf, c.CapturedAt.UnixMilli())
			}
		}
	}
	return appendLong(buf, 0), nil // end of the consents
}

// appendLong appends an Avro int or long: zig-zag, then a base-128 varint.
func appendLong(buf []byte, v int64) []byte {
	return binary.AppendUvarint(buf, uint64((v<<1)^(v>>63)))
}

// appendString appends an Avro string: its length as a long, then its bytes.
func appendString(buf []byte, s string) []byte {
	buf = appendLong(buf, int64(len(s)))
	return append(buf, s...)
}

// appendOptString appends a ["null","string"] union: null for "".
func appendOptString(buf []byte, s string) []byte {
	if s == "" {
		return appendLong(buf, 0)
	}
	return appendString(appendLong(buf, 1), s)
}

// appendStrings appends an array of strings as one block.
func appendStrings(buf []byte, ss []string) []byte {
	if n := len(ss); n > 0 {
		buf = appendLong(buf, int64(n))
		for _, s := range ss {
			buf = appendString(buf, s)
		}
	}
	return appendLong(buf, 0)
}

// auditNative is an audit record in goavro's native form (version 2), for
// the generic encoder.
func auditNative(a *AuditRecord) map[string]any {
	decisions := make([]any, len(a.Decisions))
	for i, d := range a.Decisions {
		consents := make([]any, len(d.Consents))
		for j, c := range d.Consents {
			pc := map[string]any{"purpose": c.Purpose, "consent_change_id": nil, "consent_captured_at": nil}
			if c.ChangeID != "" {
				pc["consent_change_id"] = map[string]any{"string": c.ChangeID}
				pc["consent_captured_at"] = map[string]any{"long.timestamp-millis": c.CapturedAt}
			}
			consents[j] = pc
		}
		decisions[i] = map[string]any{
			"stream":           d.Stream,
			"purposes":         stringsAny(d.Purposes),
			"decision":         string(d.Decision),
			"reason":           d.Reason,
			"deciding_purpose": d.DecidingPurpose,
			"treated_fields":   stringsAny(d.TreatedFields),
			"consents":         consents,
		}
	}
	return map[string]any{
		"event_id":           optString(a.EventID),
		"subject_id":         optString(a.SubjectID),
		"outcome":            string(a.Outcome),
		"dead_letter_reason": optString(a.DeadLetterReason),
		"event_schema":       optString(a.EventSchema),
		"policy_version":     a.PolicyVersion,
		"source_topic":       a.SourceTopic,
		"source_partition":   a.SourcePartition,
		"source_offset":      a.SourceOffset,
		"processed_at":       a.ProcessedAt,
		"decisions":          decisions,
	}
}

func optString(s string) any {
	if s == "" {
		return nil
	}
	return map[string]any{"string": s}
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// auditFastPath reports whether the codec's catalog holds the AuditRecord
// schema the hand-written encoder was written for, and why not.
func auditFastPath(codec Decoder) (bool, string) {
	sn, ok := codec.(interface {
		SchemaByName(string) (*avrocodec.Schema, bool)
	})
	if !ok {
		return false, "the codec does not expose its catalog"
	}
	s, ok := sn.SchemaByName(AuditSchema)
	if !ok {
		return false, "the catalog has no " + AuditSchema
	}
	if s.Fingerprint != AuditFingerprint {
		return false, fmt.Sprintf("the catalog's %s has fingerprint %016x, the encoder was written for %016x", AuditSchema, s.Fingerprint, AuditFingerprint)
	}
	return true, ""
}

// arena hands out byte slices carved from larger chunks, so that a batch's
// audit records cost a few allocations instead of one each. A slice handed
// out is never written again (a new chunk is taken when one is full), so the
// records may be kept after the batch.
type arena struct{ buf []byte }

const arenaChunk = 64 << 10

// start returns the free tail of the current chunk, with room for at least
// n bytes.
func (a *arena) start(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(arenaChunk, n))
	}
	return a.buf[len(a.buf):]
}

// commit records that b, which start returned and the caller appended to,
// is handed out, and returns it with its capacity capped. When an append
// outgrew the chunk, b lives in its own allocation and the chunk is kept.
func (a *arena) commit(b []byte) []byte {
	tail := a.buf[len(a.buf):cap(a.buf)]
	if len(b) > 0 && len(tail) > 0 && &b[0] == &tail[0] && len(b) <= len(tail) {
		a.buf = a.buf[:len(a.buf)+len(b)]
	}
	return b[:len(b):len(b)]
}
