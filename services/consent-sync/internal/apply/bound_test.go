package apply

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/schemas"
)

// TestOverLongRestrictiveIDKeepsItsTieOrder: between two changes captured
// in the same millisecond the greater change_id wins (consent.Change). A
// WITHDRAW, DENY or ERASE with an over-long change_id is applied under a
// bounded id; that id must order against the other change's id as the
// original does. A grant "web-1" and a withdrawal "withdraw-…" (greater)
// in the same millisecond: the withdrawal wins, the grant does not survive
// it. The other way round ("a-…" against the grant "b-1") the grant wins.
// Before, the bounded id was "sha256:<hex>": it loses to every id above
// "sha256:" ("t…", "w…") and beats every id below it, whatever the
// original said.
func TestOverLongRestrictiveIDKeepsItsTieOrder(t *testing.T) {
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
	long := func(p string) string { return p + strings.Repeat("x", 1<<10) }
	grant := func(id, subject string) consent.Change {
		return consent.Change{ChangeID: id, SubjectID: subject, Purpose: "marketing", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "banner", NoticeVersion: "1", CapturedAt: t0}
	}
	cases := []struct {
		subject     string
		grant       consent.Change
		restrictive consent.Change
		allowed     bool // the grant's id is the greater
	}{
		{"s-withdraw", grant("web-1", "s-withdraw"),
			consent.Change{ChangeID: long("withdraw-"), SubjectID: "s-withdraw", Purpose: "marketing", Action: consent.ActionWithdraw, CapturedAt: t0}, false},
		{"s-deny", grant("t-1", "s-deny"),
			consent.Change{ChangeID: long("u-"), SubjectID: "s-deny", Purpose: "marketing", Action: consent.ActionDeny, CapturedAt: t0}, false},
		{"s-erase", grant("web-1", "s-erase"),
			consent.Change{ChangeID: long("z-"), SubjectID: "s-erase", Action: consent.ActionErase, CapturedAt: t0}, false},
		{"s-grant-wins", grant("b-1", "s-grant-wins"),
			consent.Change{ChangeID: long("a-"), SubjectID: "s-grant-wins", Purpose: "marketing", Action: consent.ActionWithdraw, CapturedAt: t0}, true},
	}
	for _, order := range []string{"grant first", "restrictive first"} {
		var batch []kafka.Message
		for _, tc := range cases {
			cs := []consent.Change{tc.grant, tc.restrictive}
			if order == "restrictive first" {
				cs = []consent.Change{tc.restrictive, tc.grant}
			}
			for _, c := range cs {
				c.SubjectID += "/" + order
				b, err := codec.EncodeSingle(ChangeSchema, c.Native())
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, kafka.Message{Topic: "consent.changes", Offset: int64(len(batch)), Key: []byte(c.SubjectID), Value: b, Time: t0})
			}
		}
		if _, err := s.Process(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			subj := tc.subject + "/" + order
			states, err := store.Lookup(context.Background(), []string{subj})
			if err != nil {
				t.Fatal(err)
			}
			v := states[subj].Check("marketing", t0.Add(time.Second))
			if v.Allowed != tc.allowed {
				t.Errorf("%s, %s: marketing allowed=%v (%s), want %v: grant %q against a %s whose id is %s",
					tc.subject, order, v.Allowed, v.Reason, tc.allowed, tc.grant.ChangeID, tc.restrictive.Action,
					map[bool]string{true: "smaller", false: "greater"}[tc.allowed])
			}
		}
	}
}
