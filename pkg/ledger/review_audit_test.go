package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
)

// auditNativeV2 is a version 2 audit record in goavro's native form, as
// the enforcer's generic encoder builds it (auditNative in
// services/enforcer/internal/enforce; its hand-written encoder writes the
// same bytes, TestAppendAuditMatchesGoavro).
func auditNativeV2(a *audit.Record) map[string]any {
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

// viewOf is the AuditView the ledger must return for record a read at c.
func viewOf(c Coord, a *audit.Record) AuditView {
	v := AuditView{Audit: Coords{Topic: c.Topic, Partition: c.Partition, Offset: c.Offset}, RecordVersion: 2, EventID: a.EventID,
		SubjectID: a.SubjectID, Outcome: string(a.Outcome), DeadLetterReason: a.DeadLetterReason, EventSchema: a.EventSchema,
		PolicyVersion: a.PolicyVersion, Source: Coords{Topic: a.SourceTopic, Partition: a.SourcePartition, Offset: a.SourceOffset},
		ProcessedAt: time.UnixMilli(a.ProcessedAt.UnixMilli()).UTC(), Decisions: []StreamDecision{}}
	for _, d := range a.Decisions {
		sd := StreamDecision{Stream: d.Stream, Purposes: nonNil(d.Purposes), Decision: string(d.Decision), Reason: d.Reason,
			DecidingPurpose: d.DecidingPurpose, TreatedFields: nonNil(d.TreatedFields), Consents: []ConsentRef{}}
		for _, pc := range d.Consents {
			ref := ConsentRef{Purpose: pc.Purpose, ChangeID: pc.ChangeID}
			if pc.ChangeID != "" {
				ms := pc.CapturedAt.UnixMilli()
				ref.CapturedAt = &ms
			}
			sd.Consents = append(sd.Consents, ref)
		}
		v.Decisions = append(v.Decisions, sd)
	}
	return v
}

// TestReviewPropertyLedgerReadsWhatTheEnforcerWrites: random version 2
// audit records of one subject, encoded as the enforcer encodes them,
// decoded by the ledger's Decoder, ingested and read back by Subject on
// each backend, come back with every field as written (times to the
// millisecond).
func TestReviewPropertyLedgerReadsWhatTheEnforcerWrites(t *testing.T) {
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		rnd := rand.New(rand.NewPCG(21, 22))
		word := func() string {
			parts := []string{"a", "é", "☃", " ", "compliant.", "user.id", "🙂", "'", "\"", "\n", "%", "_", "\\"}
			var b strings.Builder
			for range 1 + rnd.IntN(5) {
				b.WriteString(parts[rnd.IntN(len(parts))])
			}
			return b.String()
		}
		words := func() []string {
			var out []string
			for range rnd.IntN(3) {
				out = append(out, word())
			}
			return out
		}
		const subject = "subject-audit-roundtrip"
		var batch Batch
		var want []AuditView
		outcomes := []decision.Outcome{decision.Passed, decision.Redacted, decision.Dropped}
		for i := range 200 {
			a := &audit.Record{Version: 2, EventID: fmt.Sprintf("ev-%d-%s", i, word()), SubjectID: subject, Outcome: audit.Decided,
				EventSchema: word(), PolicyVersion: word(), SourceTopic: "customer.events", SourcePartition: int32(rnd.IntN(8)),
				SourceOffset: int64(i), ProcessedAt: t0.Add(time.Duration(i)*time.Second + time.Duration(rnd.IntN(1e9)))}
			if rnd.IntN(5) == 0 {
				a.Outcome, a.DeadLetterReason = audit.DeadLettered, word()
			} else {
				for range rnd.IntN(4) {
					d := audit.StreamDecision{Stream: word(), Purposes: words(), Decision: outcomes[rnd.IntN(3)], Reason: word(),
						DecidingPurpose: word(), TreatedFields: words()}
					for range rnd.IntN(3) {
						pc := decision.PurposeConsent{Purpose: word()}
						if rnd.IntN(2) == 0 {
							pc.ChangeID, pc.CapturedAt = word(), t0.Add(-time.Duration(rnd.IntN(1e12)))
						}
						d.Consents = append(d.Consents, pc)
					}
					a.Decisions = append(a.Decisions, d)
				}
			}
			b, err := codec.EncodeSingle(audit.Schema, auditNativeV2(a))
			if err != nil {
				t.Fatal(err)
			}
			m := kafka.Message{Topic: "consent.audit", Partition: 0, Offset: int64(i), Key: []byte(subject), Value: b, Time: a.ProcessedAt}
			if err := dec.Add(ctx, &batch, HoldsAudit, m); err != nil {
				t.Fatal(err)
			}
			want = append(want, viewOf(Coord{Topic: m.Topic, Partition: 0, Offset: m.Offset}, a))
		}
		if len(batch.Undecodable) > 0 {
			t.Fatalf("%d records undecodable: %s", len(batch.Undecodable), batch.Undecodable[0].Error)
		}
		if err := s.Ingest(ctx, &batch); err != nil {
			t.Fatal(err)
		}
		h, err := s.Subject(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Audits) != len(want) {
			t.Fatalf("%d audit records read back, %d written", len(h.Audits), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(h.Audits[i], want[i]) {
				t.Fatalf("audit record %d:\nwrote %+v\nread  %+v", i, want[i], h.Audits[i])
			}
		}
	})
}

// TestReviewLedgerStoresAuditRecordsOfAnyString: the enforcer audits
// every input event with the ids it carries (its producers' strings: Avro
// does not forbid a NUL character, and goavro neither checks UTF-8 on
// decoding nor on encoding), and a record the ledger cannot store is not in
// the evidence: every audit record the decoder accepted must be ingested
// and read back, on both backends. (PostgreSQL's TEXT holds neither NUL nor
// invalid UTF-8.)
func TestReviewLedgerStoresAuditRecordsOfAnyString(t *testing.T) {
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	cases := []struct {
		name string
		edit func(a *audit.Record)
	}{
		{"NUL in the event id", func(a *audit.Record) { a.EventID = "ev\x00-1" }},
		{"NUL in a treated field", func(a *audit.Record) { a.Decisions[0].TreatedFields = []string{"email\x00"} }},
		{"NUL in the dead-letter reason", func(a *audit.Record) {
			a.Outcome, a.DeadLetterReason, a.Decisions = audit.DeadLettered, "undecodable\x00", nil
		}},
		{"invalid UTF-8 in the event id", func(a *audit.Record) { a.EventID = "ev-\xff\xfe" }},
	}
	eachBackend(t, func(t *testing.T, s *Store) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				subject := fmt.Sprintf("subject-strings-%d", i)
				a := &audit.Record{Version: 2, EventID: "ev-1", SubjectID: subject, Outcome: audit.Decided, EventSchema: "consentgate.events.PageView",
					PolicyVersion: "p1", SourceTopic: "customer.events", SourceOffset: int64(i), ProcessedAt: t0,
					Decisions: []audit.StreamDecision{{Stream: "compliant.analytics", Purposes: []string{"analytics"}, Decision: decision.Redacted,
						Reason: "consent_missing", DecidingPurpose: "analytics"}}}
				tc.edit(a)
				b, err := codec.EncodeSingle(audit.Schema, auditNativeV2(a))
				if err != nil {
					t.Fatal(err)
				}
				var batch Batch
				m := kafka.Message{Topic: "consent.audit", Offset: int64(i), Key: []byte(subject), Value: b, Time: t0}
				if err := dec.Add(ctx, &batch, HoldsAudit, m); err != nil {
					t.Fatal(err)
				}
				if len(batch.Audits) != 1 {
					t.Skipf("the decoder does not accept the record (%d undecodable): nothing to store", len(batch.Undecodable))
				}
				if err := s.Ingest(ctx, &batch); err != nil {
					t.Fatalf("the ledger cannot store an audit record the enforcer wrote and its decoder read: %.200v", err)
				}
				h, err := s.Subject(ctx, subject)
				if err != nil {
					t.Fatal(err)
				}
				if len(h.Audits) != 1 {
					t.Fatalf("%d audit records read back, want 1", len(h.Audits))
				}
			})
		}
	})
}

// TestReviewLedgerStoresConsentChangesOfAnyString: the same for a consent
// change that consent-sync applies (Validate bounds an id's length, not
// its bytes): the ledger must store it, or the subject's history misses
// the change that decides for them (and, as the consumer retries the batch
// for ever, every record after it).
func TestReviewLedgerStoresConsentChangesOfAnyString(t *testing.T) {
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	eachBackend(t, func(t *testing.T, s *Store) {
		for i, id := range []string{"w\x00-1", "w-\xff"} {
			ctx := context.Background()
			subject := fmt.Sprintf("subject-change-strings-%d", i)
			c := consent.Change{ChangeID: id, SubjectID: subject, Purpose: "marketing", Action: consent.ActionWithdraw, CapturedAt: t0}
			if err := c.Validate(); err != nil {
				t.Fatalf("consent-sync refuses the change: %v", err) // it would not be applied: nothing to show
			}
			b, err := codec.EncodeSingle(ChangeSchema, c.Native())
			if err != nil {
				t.Fatal(err)
			}
			var batch Batch
			if err := dec.Add(ctx, &batch, HoldsChanges, kafka.Message{Topic: "consent.changes", Offset: int64(i), Key: []byte(subject), Value: b, Time: t0}); err != nil {
				t.Fatal(err)
			}
			if len(batch.Changes) != 1 {
				t.Fatalf("the decoder does not read the change (%d undecodable)", len(batch.Undecodable))
			}
			if err := s.Ingest(ctx, &batch); err != nil {
				t.Errorf("change id %q: the ledger cannot store a change consent-sync applied: %.200v", id, err)
				continue
			}
			h, err := s.Subject(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Changes) != 1 || !h.Changes[0].Won {
				t.Errorf("change id %q: the history holds %+v", id, h.Changes)
			}
		}
	})
}
