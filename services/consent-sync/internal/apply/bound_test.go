package apply

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// TestBoundChangeIDOrdersAsTheOriginal: a property test of
// consent.BoundChangeID against the original id as the reference: for
// random over-long ids L and ids G within the bound, the bounded id is at
// most MaxIDBytes long, valid UTF-8 when L is, the same on every call,
// distinct for distinct L, and orders against G as L does whenever G does
// not share the prefix the bounded id keeps.
func TestBoundChangeIDOrdersAsTheOriginal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "s", "t", "w", "z", "0", "9", "-", "~", "é", "€", "\U0001F600"}
	gen := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	seen := map[string]string{}
	for range 5000 {
		l := gen(consent.MaxIDBytes + 1 + rng.IntN(600))
		// G: random, or sharing a random part of L's start.
		g := gen(1 + rng.IntN(consent.MaxIDBytes-4))
		if rng.IntN(2) == 0 {
			g = l[:rng.IntN(200)] + g
		}
		for len(g) > consent.MaxIDBytes || !utf8.ValidString(g) {
			g = g[:len(g)-1]
		}
		f := consent.BoundChangeID(l)
		if len(f) > consent.MaxIDBytes || !utf8.ValidString(f) || f != consent.BoundChangeID(l) {
			t.Fatalf("bounded id of %d bytes (valid UTF-8 %v), or not stable", len(f), utf8.ValidString(f))
		}
		if prev, dup := seen[f]; dup && prev != l {
			t.Fatal("two ids share a bounded id")
		}
		seen[f] = l
		// The prefix kept: MaxIDBytes less "~sha256:" and 64 hex digits,
		// less at most 3 bytes to cut at a rune boundary.
		if commonPrefix(l, g) >= consent.MaxIDBytes-len("~sha256:")-64-3 {
			continue
		}
		if got, want := strings.Compare(f, g), strings.Compare(l, g); got != want {
			t.Fatalf("bounded id compares %d against an id within the bound, the original %d (shared prefix %d bytes)", got, want, commonPrefix(l, g))
		}
	}
	if got := consent.BoundChangeID("c-1"); got != "c-1" {
		t.Errorf("an id within the bound was changed")
	}
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
