package apply

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

func TestProcessAppliesInOrderAndPublishesNotices(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	markWarm(t, store)
	s := New(Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq", KnownPurposes: map[string]bool{"marketing": true}}, codec, store)

	t0 := time.UnixMilli(1_790_000_000_000)
	msg := func(offset int64, c consent.Change) kafka.Message {
		b, err := codec.EncodeSingle(ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: "consent.changes", Offset: offset, Key: []byte(c.SubjectID), Value: b}
	}
	grant := consent.Change{ChangeID: "c1", SubjectID: "s1", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "banner", NoticeVersion: "1", CapturedAt: t0}
	withdraw := grant
	withdraw.ChangeID, withdraw.Action, withdraw.CapturedAt = "c2", consent.ActionWithdraw, t0.Add(time.Second)
	late := grant
	late.ChangeID, late.CapturedAt = "c0", t0.Add(-time.Hour)
	odd := grant
	odd.ChangeID, odd.Purpose = "c3", "astrology"
	denyNever := consent.Change{ChangeID: "c4", SubjectID: "s2", Purpose: "marketing", Action: consent.ActionDeny, CapturedAt: t0}
	erase := consent.Change{ChangeID: "c5", SubjectID: "s1", Action: consent.ActionErase, CapturedAt: t0.Add(2 * time.Second)}
	invalid := consent.Change{ChangeID: "", SubjectID: "s9", Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: t0}

	batch := []kafka.Message{
		msg(0, grant), msg(1, withdraw), msg(2, late), msg(3, grant), msg(4, odd), msg(5, denyNever), msg(6, erase),
		msg(7, invalid), {Topic: "consent.changes", Offset: 8, Value: []byte("junk")},
	}
	out, err := s.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	var notices []map[string]any
	var dlq []kafka.Message
	for _, m := range out {
		switch m.Topic {
		case "consent.revocations":
			rec, err := codec.Decode(context.Background(), m.Value)
			if err != nil {
				t.Fatal(err)
			}
			notices = append(notices, rec.Value)
		case "consent.changes.dlq":
			dlq = append(dlq, m)
		default:
			t.Errorf("unexpected record on %s", m.Topic)
		}
	}
	// The withdrawal after a grant and the erasure publish notices; the
	// denial of a purpose never granted does not.
	if len(notices) != 2 {
		t.Fatalf("%d notices, want 2: %v", len(notices), notices)
	}
	if a, _ := avrocodec.StringField(notices[0], "action"); a != "WITHDRAW" {
		t.Errorf("first notice action %q", a)
	}
	if a, _ := avrocodec.StringField(notices[1], "action"); a != "ERASE" {
		t.Errorf("second notice action %q", a)
	}
	if since, _ := avrocodec.Field(notices[0], "since"); !since.(time.Time).Equal(withdraw.CapturedAt) {
		t.Errorf("notice since %v, want the withdrawal's captured_at", since)
	}
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2 (invalid change, junk)", len(dlq))
	}
	reasons := []string{}
	for _, d := range dlq {
		r, _ := stream.Header(d, HeaderDLQReason)
		reasons = append(reasons, r)
	}
	if reasons[0] != "invalid_change" || reasons[1] != "undecodable" {
		t.Errorf("dead-letter reasons %v", reasons)
	}
	if got := s.Ignored.Load(); got != 2 {
		t.Errorf("ignored %d changes, want 2 (the late grant and the replayed grant)", got)
	}
	if got := s.UnknownPurpose.Load(); got != 1 {
		t.Errorf("unknown purposes %d, want 1", got)
	}
	states, err := store.Lookup(context.Background(), []string{"s1"})
	if err != nil {
		t.Fatal(err)
	}
	if v := states["s1"].Check("marketing", t0.Add(time.Hour)); v.Allowed || v.Reason != consent.ReasonErased {
		t.Errorf("after erasure, marketing verdict %+v", v)
	}
}

// TestProcessReplay checks replay mode (consent-sync --rebuild): the same
// state and counts, but no dead letters and no notices.
func TestProcessReplay(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	s := New(Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq", Replay: true}, codec, store)
	t0 := time.UnixMilli(1_790_000_000_000)
	msg := func(c consent.Change) kafka.Message {
		b, err := codec.EncodeSingle(ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: "consent.changes", Value: b}
	}
	grant := consent.Change{ChangeID: "c1", SubjectID: "s1", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "banner", NoticeVersion: "1", CapturedAt: t0}
	withdraw := grant
	withdraw.ChangeID, withdraw.Action, withdraw.CapturedAt = "c2", consent.ActionWithdraw, t0.Add(time.Second)
	erase := consent.Change{ChangeID: "c3", SubjectID: "s1", Action: consent.ActionErase, CapturedAt: t0.Add(2 * time.Second)}
	out, err := s.Process(context.Background(), []kafka.Message{
		msg(grant), msg(withdraw), msg(grant), msg(erase), {Topic: "consent.changes", Value: []byte("junk")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Errorf("replay returned %d records, want none", len(out))
	}
	if a, i, inv, n := s.Applied.Load(), s.Ignored.Load(), s.Invalid.Load(), s.Notices.Load(); a != 3 || i != 1 || inv != 1 || n != 0 {
		t.Errorf("applied %d ignored %d invalid %d notices %d, want 3 1 1 0", a, i, inv, n)
	}
}
