package enforce

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strconv"
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

// TestProcessLegacyOverLongChangeID: a consent state stored before change
// ids were bounded, whose grant has a 300 KiB change id, does not let the
// event through and does not make the audit record carry that id: the
// stream decides DROPPED with reason change_id_too_long and names no
// change (consent.State.Check), so the audit record stays small. Before,
// the grant passed the event and its audit record carried the 300 KiB id
// (an audit record no default topic takes).
func TestProcessLegacyOverLongChangeID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	raw := `{"s":"granted","c":"` + strings.Repeat("c", 300<<10) + `","t":` + strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10) +
		`,"b":"CONSENT","src":"legacy","n":"1"}`
	if err := f.redis.Client(t).HSet(ctx, f.store.Key("s-legacy"), "marketing", raw).Err(); err != nil {
		t.Fatal(err)
	}
	f.grant(t, "s-legacy", "analytics")
	out, err := f.e.Process(ctx, []kafka.Message{f.email(t, 50, "e1", "s-legacy")})
	if err != nil {
		t.Fatal(err)
	}
	got := byTopic(out)
	if n := len(got["compliant.marketing"]); n != 0 {
		t.Errorf("compliant.marketing got %d records: a grant with an over-long change id let the event through", n)
	}
	as := readAudits(t, f.codec.Catalog(), out)
	if len(as) != 1 {
		t.Fatalf("%d audit records, want 1", len(as))
	}
	if m := got["consent.audit"][0]; len(m.Value) > 4<<10 {
		t.Errorf("audit record of %d bytes: it carries the over-long change id", len(m.Value))
	}
	var marketing, analytics *StreamDecision
	for i := range as[0].Decisions {
		switch d := &as[0].Decisions[i]; d.Stream {
		case "compliant.marketing":
			marketing = d
		case "compliant.analytics":
			analytics = d
		}
	}
	if marketing == nil || marketing.Decision != "DROPPED" || marketing.Reason != string(consent.ReasonChangeIDTooLong) ||
		len(marketing.Consents) != 1 || marketing.Consents[0].ChangeID != "" || !marketing.Consents[0].CapturedAt.IsZero() {
		t.Errorf("compliant.marketing: %s, want DROPPED change_id_too_long naming no change", summary(marketing))
	}
	if analytics == nil || analytics.Decision != "PASSED" || len(analytics.Consents) != 1 || analytics.Consents[0].ChangeID != "c-s-legacy-analytics" {
		t.Errorf("compliant.analytics: %s, want PASSED on its own grant", summary(analytics))
	}
}

// summary describes d without its ids' bytes.
func summary(d *StreamDecision) string {
	if d == nil {
		return "no decision"
	}
	s := fmt.Sprintf("%s %s", d.Decision, d.Reason)
	for _, c := range d.Consents {
		s += fmt.Sprintf(", %s: change id of %d bytes, captured at %v", c.Purpose, len(c.ChangeID), c.CapturedAt)
	}
	return s
}
