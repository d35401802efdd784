package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
)

// AuditFingerprint is the CRC-64-AVRO fingerprint of the Parsing Canonical
// Form of the consentgate.audit.AuditRecord schema that the hand-written
// audit encoder (appendAudit) was written for, as the Avro specification
// defines both (avrocodec.Schema.Fingerprint); the single-object header
// carries it little-endian: C3 01 25 C8 C2 4D E0 FB 13 30. When the
// catalog's AuditRecord has another fingerprint (a changed schema, or
// SCHEMAS_DIR pointing at other files), the enforcer encodes audit records
// through goavro instead and logs that once at start. (Audit records written
// before consentgate followed the specification carry goavro's fingerprint
// of the same schema, f1f9e5bfba6cfe4a, which avrocodec still reads.)
const AuditFingerprint uint64 = 0x3013fbe04dc2c825

// auditFields is one audit record, as the hand-written encoder takes it: the
// fields of consentgate.audit.AuditRecord in schema order.
type auditFields struct {
	EventID, SubjectID, Stream, Purpose string
	Decision                            decision.Outcome
	Reason                              string
	TreatedFields                       []string
	ChangeID                            string    // "" encodes null
	CapturedAt                          time.Time // used only with ChangeID
	PolicyVersion, SourceTopic          string
	SourcePartition                     int32
	SourceOffset                        int64
	EventSchema                         string
	ProcessedAt                         time.Time
}

// errUnknownDecision is returned for an outcome that is not a symbol of the
// Decision enum; goavro rejects it too.
var errUnknownDecision = errors.New("decision is not a symbol of consentgate.audit.Decision")

// appendAudit appends the single-object encoding of a (header with the
// fingerprint fp, then the Avro binary datum) to buf. It produces the bytes
// goavro's BinaryFromNative produces for the same record.
func appendAudit(buf []byte, fp uint64, a *auditFields) ([]byte, error) {
	var sym int64
	switch a.Decision {
	case decision.Passed:
		sym = 0
	case decision.Redacted:
		sym = 1
	case decision.Dropped:
		sym = 2
	default:
		return buf, errUnknownDecision
	}
	buf = append(buf, 0xC3, 0x01)
	buf = binary.LittleEndian.AppendUint64(buf, fp)
	buf = appendString(buf, a.EventID)
	buf = appendString(buf, a.SubjectID)
	buf = appendString(buf, a.Stream)
	buf = appendString(buf, a.Purpose)
	buf = appendLong(buf, sym)
	buf = appendString(buf, a.Reason)
	if n := len(a.TreatedFields); n > 0 {
		buf = appendLong(buf, int64(n))
		for _, f := range a.TreatedFields {
			buf = appendString(buf, f)
		}
	}
	buf = appendLong(buf, 0) // end of the array
	if a.ChangeID == "" {
		buf = appendLong(buf, 0) // consent_change_id: null
		buf = appendLong(buf, 0) // consent_captured_at: null
	} else {
		buf = appendLong(buf, 1)
		buf = appendString(buf, a.ChangeID)
		buf = appendLong(buf, 1)
		buf = appendLong(buf, a.CapturedAt.UnixMilli())
	}
	buf = appendString(buf, a.PolicyVersion)
	buf = appendString(buf, a.SourceTopic)
	buf = appendLong(buf, int64(a.SourcePartition))
	buf = appendLong(buf, a.SourceOffset)
	buf = appendString(buf, a.EventSchema)
	buf = appendLong(buf, a.ProcessedAt.UnixMilli())
	return buf, nil
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
