package consent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// consumed is what consent-sync's consumer makes of c before Apply (the
// same steps as internal/apply's pass, for a record without timestamp):
// the bounded restrictive id, Validate, the clock rule. ok is false when
// the consumer refuses the change (dead letter).
func consumed(c Change, received time.Time) (Change, bool) {
	c = c.BoundRestrictiveID()
	if c.Validate() != nil {
		return c, false
	}
	c, err := c.BoundCapturedAt(received, DefaultMaxClockSkew)
	return c, err == nil
}

// TestReviewCapBoundedRestrictiveIDKeepsTheTieOrder: a DENY and a GRANT
// captured in the same millisecond: the greater change id wins (byte-wise,
// as State.Check and the documentation of ApplyWith say), and a DENY whose
// id is not valid UTF-8 (or over-long) is applied under its bounded id,
// which BoundChangeID promises orders against any other id as the id does
// or else wins ("the restrictive change wins"). The bounded id puts "~"
// (0x7E) where the id had its first invalid byte (always 0x80 or more):
// a GRANT whose id has the same valid prefix and then any non-ASCII
// character ("aé" against the DENY "a\xff") is below the DENY's id but
// above its bounded id, and the GRANT stays in force over the DENY that
// takes it away, in either order of application. The same holds for an
// over-long id whose byte at the cut is a multi-byte character.
func TestReviewCapBoundedRestrictiveIDKeepsTheTieOrder(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", boundKeep)
	for _, tc := range []struct{ name, deny, grant string }{
		{"not UTF-8", "a\xff", "a\u00e9"},
		{"not UTF-8 after multi-byte", "\u00e9\xf5", "\u00e9\u4e2d"},
		{"not UTF-8 and over-long", long + "\u00e9\xff" + strings.Repeat("b", 100), long[:MaxGrantIDBytes]},
		{"greatest character", "a\xff", "a\U0010FFFE\U0010FFFE"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkTieOrder(t, tc.deny, tc.grant) })
	}
}

// TestReviewCapOverLongRestrictiveIDKeepsTheTieOrder is the same for an
// over-long id (valid UTF-8) whose byte at the cut of BoundChangeID is
// above "~" (DEL or a multi-byte character): with GRANT ids up to
// MaxIDBytes, a GRANT with the same first boundKeep bytes and then a
// multi-byte character won the tie (the review's finding, left open then).
// Now a GRANT id is at most MaxGrantIDBytes: such a GRANT is refused, and
// against every GRANT id it allows, a bounded id orders as the whole id
// does or is the greater (property over random ids sharing long prefixes).
func TestReviewCapOverLongRestrictiveIDKeepsTheTieOrder(t *testing.T) {
	long := strings.Repeat("a", boundKeep)
	for _, grant := range []string{long + "\u00e9", long + "~t", strings.Repeat("a", MaxGrantIDBytes+1)} {
		c := Change{ChangeID: grant, SubjectID: "s", Purpose: "p", Action: ActionGrant, LegalBasis: BasisConsent,
			Source: "web", NoticeVersion: "n1", CapturedAt: time.UnixMilli(1_772_000_000_000)}
		if err := c.Validate(); !errors.Is(err, ErrInvalidChange) {
			t.Errorf("a GRANT id of %d bytes is accepted", len(grant))
		}
	}
	rng := rand.New(rand.NewPCG(12, 34))
	alphabet := []string{"a", "b", "~", "\x7f", "\u00e9", "\u4e2d", "\U0010FFFE", "\xff", "\x80"}
	letters := alphabet
	pick := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(letters[rng.IntN(len(letters))])
		}
		return b.String()
	}
	for i := 0; i < 20000; i++ {
		letters = alphabet
		if i%2 == 0 {
			letters = alphabet[:7] // valid UTF-8 only: over-long ids bounded at their cut
		}
		shared := pick(rng.IntN(MaxGrantIDBytes + 8))
		deny := shared + pick(rng.IntN(300))
		grant := shared + pick(rng.IntN(12))
		for len(grant) > MaxGrantIDBytes {
			grant = grant[:len(grant)-1]
		}
		g := Change{ChangeID: grant, SubjectID: "s", Purpose: "p", Action: ActionGrant, LegalBasis: BasisConsent,
			Source: "web", NoticeVersion: "n1", CapturedAt: time.UnixMilli(1_772_000_000_000)}
		if g.Validate() != nil || deny <= grant {
			continue // a GRANT id the pipeline refuses, or a tie the GRANT wins by its id anyway
		}
		if b := BoundChangeID(deny); b <= grant {
			t.Fatalf("the DENY id %q (bounded %q) is greater than the GRANT id %q, its bounded id is not", trunc(deny), trunc(b), trunc(grant))
		}
	}
}

func checkTieOrder(t *testing.T, denyID, grantID string) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	at := time.UnixMilli(1_772_000_000_000).UTC()
	if !(denyID > grantID) {
		t.Fatalf("bad case: the DENY's id must be the greater")
	}
	grant := Change{ChangeID: grantID, SubjectID: "s", Purpose: "p", Action: ActionGrant, LegalBasis: BasisConsent,
		Source: "web", NoticeVersion: "n1", CapturedAt: at}
	deny := Change{ChangeID: denyID, SubjectID: "s", Purpose: "p", Action: ActionDeny, CapturedAt: at}
	for i, order := range [][]Change{{grant, deny}, {deny, grant}} {
		s := NewStore(rdb, redistest.PrefixFor(t)+fmt.Sprintf("%d:", i))
		for _, c := range order {
			c, ok := consumed(c, time.Time{})
			if !ok {
				t.Fatalf("the consumer refuses the %s", c.Action)
			}
			if _, err := s.Apply(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.Lookup(ctx, []string{"s"})
		if err != nil {
			t.Fatal(err)
		}
		if v := st["s"].Check("p", at); v.Allowed {
			t.Errorf("order %d: purpose p is %s by the GRANT (id %q) though the DENY captured in the same millisecond has the greater id %q (bounded %q)",
				i, v.Reason, trunc(v.ChangeID), trunc(denyID), trunc(BoundChangeID(denyID)))
		}
	}
}

func trunc(s string) string {
	if len(s) > 24 {
		return s[:12] + "…" + s[len(s)-12:]
	}
	return s
}

// TestReviewCapErasureStoredAfterTheBoundDecidesAsTheStore: a tombstone
// stored by the previous release dated after MaxCapturedAt compares in the
// script as MaxCapturedAt, so a GRANT captured at MaxCapturedAt with a
// greater id is applied over it; State.Check compares the entry with the
// tombstone's own date and says erased: the enforcer's decision is not
// what Apply decided (and a DENY stored the same way is reported as
// erased, not denied). Check must read the tombstone as the script does.
func TestReviewCapErasureStoredAfterTheBoundDecidesAsTheStore(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	far := MaxCapturedAt.AddDate(10000, 0, 0)
	for _, a := range []Action{ActionGrant, ActionWithdraw} {
		t.Run(string(a), func(t *testing.T) {
			s := NewStore(rdb, redistest.PrefixFor(t))
			old := fmt.Sprintf(`{"c":"a-erase","t":%d}`, far.UnixMilli())
			if err := rdb.HSet(ctx, s.Key("s"), TombstoneField, old).Err(); err != nil {
				t.Fatal(err)
			}
			c := Change{ChangeID: "z-" + string(a), SubjectID: "s", Purpose: "p", Action: a, LegalBasis: BasisConsent,
				Source: "web", NoticeVersion: "n1", CapturedAt: MaxCapturedAt}
			o, err := s.Apply(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Lookup(ctx, []string{"s"})
			if err != nil {
				t.Fatal(err)
			}
			v := st["s"].Check("p", MaxCapturedAt.Add(-time.Hour))
			if o.Applied && v.ChangeID != c.ChangeID {
				t.Errorf("Apply stored the %s over the tombstone dated after MaxCapturedAt, and Check decides %s by %q",
					a, v.Reason, v.ChangeID)
			}
		})
	}
}

// modelSubject is the reference model of one subject: newest captured_at
// in milliseconds wins, then the greatest change id byte-wise; an ERASE
// removes every purpose change not newer than it and stops every change
// not newer than it.
type modelSubject struct {
	purposes map[string]Change
	tomb     *Change
}

func mNewer(a, b Change) bool {
	return newer(a.CapturedAt.UnixMilli(), a.ChangeID, b.CapturedAt.UnixMilli(), b.ChangeID)
}

// apply applies c and reports whether c must owe a notice.
func (m *modelSubject) apply(c Change) (due bool) {
	restrictive := c.Action.Restrictive()
	if m.tomb != nil && !mNewer(c, *m.tomb) {
		return restrictive && m.tomb.ChangeID != c.ChangeID
	}
	if c.Action == ActionErase {
		for p, pc := range m.purposes {
			if !mNewer(pc, c) {
				delete(m.purposes, p)
			}
		}
		m.tomb = &c
		return true
	}
	cur, ok := m.purposes[c.Purpose]
	if ok && !mNewer(c, cur) {
		return restrictive && cur.ChangeID != c.ChangeID
	}
	m.purposes[c.Purpose] = c
	return restrictive && ok && cur.Action == ActionGrant
}

func (m *modelSubject) verdict(purpose string) string {
	if m == nil || (len(m.purposes) == 0 && m.tomb == nil) {
		return string(ReasonUnknownSubject)
	}
	if c, ok := m.purposes[purpose]; ok {
		st, _ := statusOf(c.Action)
		r := map[Status]Reason{StatusGranted: ReasonGranted, StatusDenied: ReasonDenied, StatusWithdrawn: ReasonWithdrawn}[st]
		return fmt.Sprintf("%s by %q", r, c.ChangeID)
	}
	if m.tomb != nil {
		return fmt.Sprintf("%s by %q", ReasonErased, m.tomb.ChangeID)
	}
	return string(ReasonNeverAsked)
}

// TestReviewCapPropertyStoreIsTheModel draws change sets with dates around
// MaxCapturedAt and 2^53 ms (a record without timestamp: only the cap of
// the clock rule applies), ids with bytes that are not UTF-8, "~",
// multi-byte characters and over-long ids, passes each change through the
// consumer's steps, and applies the set in random orders (with
// duplicates) on a real Redis. After every order the enforcer's verdict
// (Lookup, State.Check) must be the model's for every subject and
// purpose, and every restrictive change that the model says owes a
// notice (it replaced a grant, is late, or an erasure took effect) must
// have had its notice due when it was applied.
func TestReviewCapPropertyStoreIsTheModel(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 53))
	t.Logf("seed %d", seed)
	const two53 = int64(1) << 53
	times := []int64{1_000, 1_001, maxCapturedMS - 1, maxCapturedMS, maxCapturedMS + 1, two53 - 1, two53, two53 + 1, two53 + 2, 1 << 60}
	pieces := []string{"a", "b", "~", "~t", "\u00e9", "\u4e2d", "\xff", "\xc3", "~sha256:", "\U0010FFFF"}
	id := func() string {
		var b strings.Builder
		if rng.IntN(5) == 0 {
			b.WriteString(strings.Repeat("a", boundKeep-rng.IntN(3)))
		}
		for range 1 + rng.IntN(3) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if rng.IntN(8) == 0 {
			b.WriteString(strings.Repeat("\u4e2d", 100))
		}
		return b.String()
	}
	iterations := 150
	if testing.Short() {
		iterations = 30
	}
	for it := range iterations {
		var set []Change
		ids := map[string]bool{} // change ids are unique
		for range 2 + rng.IntN(8) {
			a := []Action{ActionGrant, ActionGrant, ActionDeny, ActionWithdraw, ActionErase}[rng.IntN(5)]
			c := Change{ChangeID: id(), SubjectID: []string{"s1", "s2"}[rng.IntN(2)], Purpose: []string{"p", "q"}[rng.IntN(2)],
				Action: a, LegalBasis: BasisConsent, Source: "web", NoticeVersion: "n1",
				CapturedAt: time.UnixMilli(times[rng.IntN(len(times))]).UTC()}
			if a == ActionErase {
				c.Purpose = ""
			}
			if c, ok := consumed(c, time.Time{}); ok && !ids[c.ChangeID] {
				ids[c.ChangeID] = true
				set = append(set, c)
			}
		}
		var want map[string]string
		for order := range 3 {
			log := slices.Clone(set)
			rng.Shuffle(len(log), func(i, j int) { log[i], log[j] = log[j], log[i] })
			if len(log) > 0 && rng.IntN(2) == 0 {
				log = slices.Insert(log, rng.IntN(len(log)+1), log[rng.IntN(len(log))])
			}
			s := NewStore(rdb, fmt.Sprintf("%s%d-%d:", redistest.PrefixFor(t), it, order))
			model := map[string]*modelSubject{}
			for _, c := range log {
				m := model[c.SubjectID]
				if m == nil {
					m = &modelSubject{purposes: map[string]Change{}}
					model[c.SubjectID] = m
				}
				due := m.apply(c)
				o, err := s.Apply(ctx, c)
				if err != nil {
					t.Fatalf("seed %d: apply %s at %d: %v", seed, c.Action, c.CapturedAt.UnixMilli(), err)
				}
				if due && !o.NoticeDue {
					t.Errorf("seed %d iteration %d order %d: the %s %q at %d owes a notice and none is due (applied %v)",
						seed, it, order, c.Action, trunc(c.ChangeID), c.CapturedAt.UnixMilli(), o.Applied)
				}
			}
			got := map[string]string{}
			modelV := map[string]string{}
			st, err := s.Lookup(ctx, []string{"s1", "s2"})
			if err != nil {
				t.Fatal(err)
			}
			for _, subj := range []string{"s1", "s2"} {
				for _, p := range []string{"p", "q"} {
					v := st[subj].Check(p, time.UnixMilli(1_000).UTC())
					got[subj+"/"+p] = string(v.Reason)
					if v.ChangeID != "" {
						got[subj+"/"+p] = fmt.Sprintf("%s by %q", v.Reason, v.ChangeID)
					}
					modelV[subj+"/"+p] = model[subj].verdict(p)
				}
			}
			for k := range got {
				if got[k] != modelV[k] {
					t.Errorf("seed %d iteration %d order %d: %s: the store decides %s, the model %s", seed, it, order, k, got[k], modelV[k])
				}
			}
			if order == 0 {
				want = got
			} else if !maps2Equal(want, got) {
				t.Errorf("seed %d iteration %d: order %d decides %v, order 0 %v", seed, it, order, got, want)
			}
		}
		if t.Failed() {
			return
		}
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
