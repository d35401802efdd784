package enforce

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestProcessDeadLettersOverLongIDs: an event whose event_id or subject_id
// is longer than MaxIDBytes is dead-lettered with reason id_too_long; its
// dead letter keeps the input untouched, and its DEAD_LETTERED audit record,
// the audit record's key and its headers leave the over-long id(s) out, so
// that the audit record stays small whatever the producer sent (every input
// offset has exactly one audit record). Ids of exactly MaxIDBytes bytes are
// decided as usual.
func TestProcessDeadLettersOverLongIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	atBound := "s-" + strings.Repeat("b", MaxIDBytes-2)
	idAtBound := "e-" + strings.Repeat("i", MaxIDBytes-2)
	// The fixture's grant names its change after the subject: too long.
	if _, err := f.store.Apply(context.Background(), consent.Change{ChangeID: "c-at-bound", SubjectID: atBound, Purpose: "marketing",
		Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	longID := "e-" + strings.Repeat("i", 300<<10)
	longSubject := "s-" + strings.Repeat("s", 200<<10)
	justOver := "s-" + strings.Repeat("j", MaxIDBytes-1) // MaxIDBytes+1 bytes
	cases := []struct {
		name         string
		id, subject  string
		key          string
		wantOutcome  AuditOutcome
		wantReason   string
		wantID       string // audit event_id and event-id header
		wantSubject  string // audit subject_id and key
		wantRecorded bool   // decided and published
	}{
		{"both at the bound", idAtBound, atBound, atBound, AuditDecided, "", idAtBound, atBound, true},
		{"long event id", longID, "s1", "s1", AuditDeadLettered, DeadLetterIDTooLong, "", "s1", false},
		{"long subject id", "e2", longSubject, "k", AuditDeadLettered, DeadLetterIDTooLong, "e2", "", false},
		{"both long", longID, longSubject, "k", AuditDeadLettered, DeadLetterIDTooLong, "", "", false},
		{"subject one byte over", "e4", justOver, justOver, AuditDeadLettered, DeadLetterIDTooLong, "e4", "", false},
		{"no subject, long event id", longID, "", "k", AuditDeadLettered, DeadLetterMissingSubjectID, "", "", false},
		{"no event id, long subject", "", longSubject, "k", AuditDeadLettered, DeadLetterMissingEventID, "", "", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := f.email(t, int64(40+i), tc.id, tc.subject)
			in.Key = []byte(tc.key)
			out, err := f.e.Process(context.Background(), []kafka.Message{in})
			if err != nil {
				t.Fatal(err)
			}
			got := byTopic(out)
			as := readAudits(t, f.codec.Catalog(), out)
			if len(as) != 1 || len(got["consent.audit"]) != 1 {
				t.Fatalf("%d audit records, want exactly 1", len(as))
			}
			a, am := as[0], got["consent.audit"][0]
			if a.Outcome != tc.wantOutcome || a.DeadLetterReason != tc.wantReason {
				t.Errorf("audit: %s %q, want %s %q", a.Outcome, a.DeadLetterReason, tc.wantOutcome, tc.wantReason)
			}
			if a.EventID != tc.wantID || a.SubjectID != tc.wantSubject {
				t.Errorf("audit: event_id of %d bytes, subject_id of %d bytes, want %d and %d", len(a.EventID), len(a.SubjectID), len(tc.wantID), len(tc.wantSubject))
			}
			if string(am.Key) != tc.wantSubject {
				t.Errorf("audit key of %d bytes, want %d", len(am.Key), len(tc.wantSubject))
			}
			h, has := stream.Header(am, HeaderEventID)
			if has != (tc.wantID != "") || h != tc.wantID {
				t.Errorf("audit event-id header present %v (%d bytes), want %d bytes", has, len(h), len(tc.wantID))
			}
			for _, x := range am.Headers {
				if len(x.Value) > MaxIDBytes {
					t.Errorf("audit header %s carries %d bytes", x.Key, len(x.Value))
				}
			}
			if len(am.Key)+len(am.Value) > 4<<10 {
				t.Errorf("audit record of %d bytes: it carries an over-long id", len(am.Key)+len(am.Value))
			}
			if tc.wantRecorded {
				if len(got["compliant.marketing"]) != 1 {
					t.Errorf("compliant.marketing got %d records, want the event", len(got["compliant.marketing"]))
				}
				return
			}
			dl := got["customer.events.dlq"]
			if len(dl) != 1 || len(out) != 2 {
				t.Fatalf("%d dead letters among %d records, want the dead letter and its audit record only", len(dl), len(out))
			}
			d := dl[0]
			if !bytes.Equal(d.Key, in.Key) || !bytes.Equal(d.Value, in.Value) || !reflect.DeepEqual(d.Headers[:len(in.Headers)], in.Headers) {
				t.Error("the dead letter does not keep the input's key, value and headers")
			}
			if r, _ := stream.Header(d, HeaderDLQReason); r != tc.wantReason {
				t.Errorf("dead letter reason %q, want %q", r, tc.wantReason)
			}
			if e, _ := stream.Header(d, HeaderDLQError); len(e) > 200 || strings.Contains(e, "iii") || strings.Contains(e, "sss") {
				t.Errorf("dead letter error %q carries an id", e)
			}
		})
	}
}
