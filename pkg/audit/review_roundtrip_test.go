package audit

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/schemas"
)

// native is a version 2 record in goavro's native form, as the enforcer's
// generic encoder builds it (services/enforcer/internal/enforce,
// auditNative; its hand-written encoder is held to the same bytes by
// TestAppendAuditMatchesGoavro there).
func native(a *Record) map[string]any {
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return map[string]any{"string": s}
	}
	list := func(ss []string) []any {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
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
		decisions[i] = map[string]any{"stream": d.Stream, "purposes": list(d.Purposes), "decision": string(d.Decision),
			"reason": d.Reason, "deciding_purpose": d.DecidingPurpose, "treated_fields": list(d.TreatedFields), "consents": consents}
	}
	return map[string]any{"event_id": opt(a.EventID), "subject_id": opt(a.SubjectID), "outcome": string(a.Outcome),
		"dead_letter_reason": opt(a.DeadLetterReason), "event_schema": opt(a.EventSchema), "policy_version": a.PolicyVersion,
		"source_topic": a.SourceTopic, "source_partition": a.SourcePartition, "source_offset": a.SourceOffset,
		"processed_at": a.ProcessedAt, "decisions": decisions}
}

type recGen struct{ rnd *rand.Rand }

func (g *recGen) str(empty bool) string {
	if empty && g.rnd.IntN(4) == 0 {
		return ""
	}
	parts := []string{"a", "é", "☃", "\x00", " ", "compliant.", "user.id", "🙂", "'", "\"", "\n"}
	var b strings.Builder
	for range 1 + g.rnd.IntN(6) {
		b.WriteString(parts[g.rnd.IntN(len(parts))])
	}
	return b.String()
}

func (g *recGen) strs() []string {
	var out []string
	for range g.rnd.IntN(4) {
		out = append(out, g.str(false))
	}
	return out
}

func (g *recGen) time() time.Time {
	switch g.rnd.IntN(6) {
	case 0:
		return time.UnixMilli(-g.rnd.Int64N(1 << 40)).UTC() // before 1970
	case 1:
		return time.UnixMilli(253402300799999).UTC() // 9999-12-31
	}
	// Sub-millisecond parts and other zones: the record keeps milliseconds.
	return time.UnixMilli(1_700_000_000_000 + g.rnd.Int64N(1<<36)).Add(time.Duration(g.rnd.IntN(1000))).In(time.FixedZone("x", 3600))
}

func (g *recGen) record() *Record {
	a := &Record{
		Version: 2, EventID: g.str(true), SubjectID: g.str(true), Outcome: Decided, EventSchema: g.str(true),
		PolicyVersion: g.str(true), SourceTopic: g.str(true), SourcePartition: int32(g.rnd.IntN(1<<31) - 1<<30),
		SourceOffset: g.rnd.Int64() - 1<<62, ProcessedAt: g.time(),
	}
	if g.rnd.IntN(4) == 0 {
		a.Outcome, a.DeadLetterReason = DeadLettered, g.str(true)
		return a
	}
	outcomes := []decision.Outcome{decision.Passed, decision.Redacted, decision.Dropped}
	for range g.rnd.IntN(4) {
		d := StreamDecision{Stream: g.str(false), Purposes: g.strs(), Decision: outcomes[g.rnd.IntN(3)], Reason: g.str(true),
			DecidingPurpose: g.str(true), TreatedFields: g.strs()}
		for range g.rnd.IntN(3) {
			c := decision.PurposeConsent{Purpose: g.str(false)}
			if g.rnd.IntN(3) > 0 {
				c.ChangeID, c.CapturedAt = g.str(false), g.time()
			}
			d.Consents = append(d.Consents, c)
		}
		a.Decisions = append(a.Decisions, d)
	}
	return a
}

// normal is what a record reads back as: times in milliseconds and UTC,
// empty lists as nil.
func normal(a *Record) *Record {
	b := *a
	b.ProcessedAt = time.UnixMilli(a.ProcessedAt.UnixMilli()).UTC()
	b.Decisions = nil
	for _, d := range a.Decisions {
		d.Purposes = nilIfEmpty(d.Purposes)
		d.TreatedFields = nilIfEmpty(d.TreatedFields)
		var cs []decision.PurposeConsent
		for _, c := range d.Consents {
			if c.ChangeID != "" {
				c.CapturedAt = time.UnixMilli(c.CapturedAt.UnixMilli()).UTC()
			}
			cs = append(cs, c)
		}
		d.Consents = cs
		b.Decisions = append(b.Decisions, d)
	}
	return &b
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestReviewPropertyVersion2RoundTrips: every field of a random version 2
// record, written with the enforcer's native form and the catalog's schema
// (single-object encoding), comes back from Read as it was written (times
// to the millisecond, in UTC; a consent's captured_at only with its change
// id).
func TestReviewPropertyVersion2RoundTrips(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	g := &recGen{rnd: rand.New(rand.NewPCG(5, 6))}
	for i := range 2000 {
		a := g.record()
		b, err := codec.EncodeSingle(Schema, native(a))
		if err != nil {
			t.Fatalf("record %d: encode: %v", i, err)
		}
		got, err := Read(cat, b)
		if err != nil {
			t.Fatalf("record %d: read: %v", i, err)
		}
		if want := normal(a); !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d does not round-trip:\nwrote %#v\nread  %#v", i, want, got)
		}
	}
}

// TestReviewPropertyVersion1Reads: a random version 1 record (one stream),
// written with version 1's schema and fingerprint, reads as a version 1
// Record with every field it holds.
func TestReviewPropertyVersion1Reads(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	v1, ok := cat.Version(Schema, 1)
	if !ok {
		t.Fatal("no version 1 of the audit record in the catalog")
	}
	g := &recGen{rnd: rand.New(rand.NewPCG(7, 8))}
	outcomes := []string{"PASSED", "REDACTED", "DROPPED"}
	for i := range 2000 {
		processed := g.time()
		change, captured := "", time.Time{}
		var changeN, capturedN any
		if g.rnd.IntN(3) > 0 {
			change, captured = g.str(false), g.time()
			changeN, capturedN = map[string]any{"string": change}, map[string]any{"long.timestamp-millis": captured}
		}
		treated := g.strs()
		tl := make([]any, len(treated))
		for j, s := range treated {
			tl[j] = s
		}
		n := map[string]any{"event_id": g.str(true), "subject_id": g.str(true), "stream": g.str(true), "purpose": g.str(true),
			"decision": outcomes[g.rnd.IntN(3)], "reason": g.str(true), "treated_fields": tl, "consent_change_id": changeN,
			"consent_captured_at": capturedN, "policy_version": g.str(true), "source_topic": g.str(true),
			"source_partition": int32(g.rnd.IntN(1 << 20)), "source_offset": g.rnd.Int64N(1 << 50), "event_schema": g.str(true),
			"processed_at": processed}
		body, err := v1.Codec().BinaryFromNative(nil, n)
		if err != nil {
			t.Fatalf("record %d: encode: %v", i, err)
		}
		data := binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, v1.Fingerprint)
		got, err := Read(cat, append(data, body...))
		if err != nil {
			t.Fatalf("record %d: read: %v", i, err)
		}
		pc := decision.PurposeConsent{Purpose: n["purpose"].(string), ChangeID: change}
		if change != "" {
			pc.CapturedAt = time.UnixMilli(captured.UnixMilli()).UTC()
		}
		want := &Record{Version: 1, EventID: n["event_id"].(string), SubjectID: n["subject_id"].(string), Outcome: Decided,
			EventSchema: n["event_schema"].(string), PolicyVersion: n["policy_version"].(string), SourceTopic: n["source_topic"].(string),
			SourcePartition: n["source_partition"].(int32), SourceOffset: n["source_offset"].(int64),
			ProcessedAt: time.UnixMilli(processed.UnixMilli()).UTC(),
			Decisions: []StreamDecision{{Stream: n["stream"].(string), Decision: decision.Outcome(n["decision"].(string)),
				Reason: n["reason"].(string), DecidingPurpose: n["purpose"].(string), TreatedFields: nilIfEmpty(treated),
				Consents: []decision.PurposeConsent{pc}}}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("version 1 record %d:\nwrote %#v\nread  %#v", i, want, got)
		}
	}
}
