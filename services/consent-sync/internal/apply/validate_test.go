package apply

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// TestUnknownExclusionIsDeadLettered: a GRANT whose exclusion names no
// category of the taxonomy is not applied (it would exclude nothing) but
// dead-lettered with a reason that names the problem, not the value.
func TestUnknownExclusionIsDeadLettered(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	s := New(Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq"}, codec, store)
	t0 := time.UnixMilli(1_790_000_000_000)
	var batch []kafka.Message
	for i, excl := range []string{"Medical-History", "user.health.*"} {
		c := consent.Change{ChangeID: "c" + strconv.Itoa(i), SubjectID: "s" + strconv.Itoa(i), Purpose: "marketing", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "banner", NoticeVersion: "1", CapturedAt: t0, ExcludedCategories: []string{"user.contact", excl}}
		b, err := codec.EncodeSingle(ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, kafka.Message{Topic: "consent.changes", Offset: int64(i), Key: []byte(c.SubjectID), Value: b})
	}
	out, err := s.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Topic != "consent.changes.dlq" {
		t.Fatalf("%d records out, want one dead letter", len(out))
	}
	reason, _ := stream.Header(out[0], HeaderDLQReason)
	msg, _ := stream.Header(out[0], HeaderDLQError)
	if reason != "invalid_change" || !strings.Contains(msg, "excluded_categories: item 1 names no data category") || strings.Contains(msg, "Medical") {
		t.Errorf("dead letter %s: %q", reason, msg)
	}
	states, err := store.Lookup(context.Background(), []string{"s0", "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if states["s0"] != nil {
		t.Error("the grant with an unknown exclusion was applied")
	}
	if states["s1"] == nil || states["s1"].Purposes["marketing"].Status != consent.StatusGranted {
		t.Error("the valid grant was not applied")
	}
}

// TestOverLongIDsAreDeadLettered: a change whose change_id or subject_id is
// longer than consent.MaxIDBytes (the rule the intake applies, in
// consent.Change.Validate) is not applied but dead-lettered invalid_change,
// with an error that names the field, never the value; an erasure too.
func TestOverLongIDsAreDeadLettered(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	s := New(Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq"}, codec, store)
	t0 := time.UnixMilli(1_790_000_000_000)
	longSubject := "s-" + strings.Repeat("s", consent.MaxIDBytes-1)
	changes := []consent.Change{
		{ChangeID: "c-" + strings.Repeat("c", consent.MaxIDBytes-1), SubjectID: "s0", Purpose: "marketing", Action: consent.ActionGrant},
		{ChangeID: "c1", SubjectID: longSubject, Purpose: "marketing", Action: consent.ActionGrant},
		{ChangeID: "c2-" + strings.Repeat("c", 300<<10), SubjectID: "s2", Action: consent.ActionErase},
		{ChangeID: strings.Repeat("c", consent.MaxIDBytes), SubjectID: "s3", Purpose: "marketing", Action: consent.ActionGrant},
	}
	var batch []kafka.Message
	for i, c := range changes {
		c.CapturedAt = t0
		if c.Action == consent.ActionGrant {
			c.LegalBasis, c.Source, c.NoticeVersion = consent.BasisConsent, "banner", "1"
		}
		b, err := codec.EncodeSingle(ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, kafka.Message{Topic: "consent.changes", Offset: int64(i), Key: []byte("k"), Value: b})
	}
	out, err := s.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	wantField := []string{"change_id", "subject_id", "change_id"}
	if len(out) != len(wantField) {
		t.Fatalf("%d records out, want %d dead letters", len(out), len(wantField))
	}
	for i, m := range out {
		reason, _ := stream.Header(m, HeaderDLQReason)
		msg, _ := stream.Header(m, HeaderDLQError)
		if m.Topic != "consent.changes.dlq" || reason != "invalid_change" || !strings.Contains(msg, wantField[i]+": is longer than 256 bytes") ||
			strings.Contains(msg, "ccc") || strings.Contains(msg, "sss") {
			t.Errorf("record %d on %s: %s %q, want a dead letter invalid_change naming %s", i, m.Topic, reason, msg, wantField[i])
		}
	}
	states, err := store.Lookup(context.Background(), []string{"s0", longSubject, "s2", "s3"})
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"s0", longSubject, "s2"} {
		if states[subj] != nil {
			t.Errorf("a change with an over-long id was applied (subject of %d bytes)", len(subj))
		}
	}
	if states["s3"] == nil || states["s3"].Purposes["marketing"].Status != consent.StatusGranted {
		t.Error("the grant whose change id is exactly at the bound was not applied")
	}
}

// TestUnknownPurposesBounded: a producer sending ever new purpose ids
// cannot grow the set the Syncer remembers without bound.
func TestUnknownPurposesBounded(t *testing.T) {
	t.Parallel()
	calls := 0
	s := New(Options{OnUnknownPurpose: func(string) { calls++ }}, nil, nil)
	for i := 0; i < 10*MaxUnknownPurposes; i++ {
		s.reportUnknown("p" + strconv.Itoa(i))
		s.reportUnknown("p0")
	}
	if calls != MaxUnknownPurposes || len(s.unknownSeen) != MaxUnknownPurposes {
		t.Errorf("%d reports, %d remembered, want %d each", calls, len(s.unknownSeen), MaxUnknownPurposes)
	}
}
