package apply

import (
	"context"
	"fmt"
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
// longer than consent.MaxIDBytes, or a GRANT whose change_id is longer than
// consent.MaxGrantIDBytes (the rules the intake applies, in
// consent.Change.Validate), is not applied but dead-lettered invalid_change,
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
		{ChangeID: strings.Repeat("c", consent.MaxGrantIDBytes+1), SubjectID: "s4", Purpose: "marketing", Action: consent.ActionGrant},
		{ChangeID: strings.Repeat("c", consent.MaxGrantIDBytes), SubjectID: "s3", Purpose: "marketing", Action: consent.ActionGrant},
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
	// (A WITHDRAW, DENY or ERASE with an over-long id is applied under a
	// bounded id instead: TestOverLongIDOfARestrictiveChangeStillTakesEffect.)
	wantField := []string{"change_id", "subject_id", "change_id"}
	wantBound := []int{consent.MaxIDBytes, consent.MaxIDBytes, consent.MaxGrantIDBytes}
	if len(out) != len(wantField) {
		t.Fatalf("%d records out, want %d dead letters", len(out), len(wantField))
	}
	for i, m := range out {
		reason, _ := stream.Header(m, HeaderDLQReason)
		msg, _ := stream.Header(m, HeaderDLQError)
		if m.Topic != "consent.changes.dlq" || reason != "invalid_change" || !strings.Contains(msg, fmt.Sprintf("%s: is longer than %d bytes", wantField[i], wantBound[i])) ||
			strings.Contains(msg, "ccc") || strings.Contains(msg, "sss") {
			t.Errorf("record %d on %s: %s %q, want a dead letter invalid_change naming %s", i, m.Topic, reason, msg, wantField[i])
		}
	}
	states, err := store.Lookup(context.Background(), []string{"s0", longSubject, "s3", "s4"})
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"s0", longSubject, "s4"} {
		if states[subj] != nil {
			t.Errorf("a change with an over-long id was applied (subject of %d bytes)", len(subj))
		}
	}
	if states["s3"] == nil || states["s3"].Purposes["marketing"].Status != consent.StatusGranted {
		t.Error("the grant whose change id is exactly at the GRANT bound was not applied")
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

// TestOverLongIDOfARestrictiveChangeStillTakesEffect: a WITHDRAW, DENY or
// ERASE whose change_id is over the bound (from a producer writing to the
// consent topic directly; the intake answers 400) is never dead-lettered:
// dropping it would leave the grant it takes away in force. It is applied
// under a bounded id derived from its own (consent.BoundChangeID), the
// same on every delivery, and its notice is owed as for any other.
func TestOverLongIDOfARestrictiveChangeStillTakesEffect(t *testing.T) {
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
	long := func(p string) string { return p + strings.Repeat("x", 300<<10) }
	grant := func(id, subject, purpose string) consent.Change {
		return consent.Change{ChangeID: id, SubjectID: subject, Purpose: purpose, Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "banner", NoticeVersion: "1", CapturedAt: t0}
	}
	later := t0.Add(time.Minute)
	changes := []consent.Change{
		grant("g1", "s-withdraw", "marketing"), grant("g2", "s-deny", "marketing"), grant("g3", "s-erase", "marketing"),
		{ChangeID: long("w-"), SubjectID: "s-withdraw", Purpose: "marketing", Action: consent.ActionWithdraw, CapturedAt: later},
		{ChangeID: long("d-"), SubjectID: "s-deny", Purpose: "marketing", Action: consent.ActionDeny, CapturedAt: later},
		{ChangeID: long("e-"), SubjectID: "s-erase", Action: consent.ActionErase, CapturedAt: later},
	}
	var batch []kafka.Message
	for i, c := range changes {
		b, err := codec.EncodeSingle(ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, kafka.Message{Topic: "consent.changes", Offset: int64(i), Key: []byte(c.SubjectID), Value: b, Time: later})
	}
	out, err := s.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	notices := 0
	for _, m := range out {
		if m.Topic == "consent.changes.dlq" {
			reason, _ := stream.Header(m, HeaderDLQReason)
			t.Errorf("a restrictive change with an over-long id was dead-lettered (%s): the grant it withdraws stays in force", reason)
		}
		if m.Topic == "consent.revocations" {
			notices++
			if len(m.Value) > 4096 {
				t.Errorf("a notice of %d bytes carries the over-long id", len(m.Value))
			}
		}
	}
	if notices != 3 {
		t.Errorf("%d revocation notices, want 3", notices)
	}
	states, err := store.Lookup(context.Background(), []string{"s-withdraw", "s-deny", "s-erase"})
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"s-withdraw", "s-deny", "s-erase"} {
		v := states[subj].Check("marketing", later.Add(time.Second))
		if v.Allowed {
			t.Errorf("%s: marketing still allowed (%s) after its over-long restrictive change", subj, v.Reason)
		}
		if len(v.ChangeID) > consent.MaxIDBytes {
			t.Errorf("%s: the deciding change id is %d bytes", subj, len(v.ChangeID))
		}
	}
	if id := consent.BoundChangeID(long("w-")); id != consent.BoundChangeID(long("w-")) || len(id) > consent.MaxIDBytes || id == consent.BoundChangeID(long("d-")) {
		t.Errorf("BoundChangeID is not a stable, bounded, distinct id (%d bytes)", len(id))
	}
}
