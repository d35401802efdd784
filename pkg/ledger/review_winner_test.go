package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// consumeChange is what consent-sync's consumer does with one record of
// consent.changes (services/consent-sync/internal/apply, Syncer.pass; that
// package is internal to its module, so its steps are repeated here one for
// one): decode the record's bytes, check the schema, ChangeFromNative,
// bound a restrictive change's id, Validate, apply the clock rule against
// the record's timestamp, then ApplyWith on the real store. Anything refused
// on the way is dead-lettered (never applied).
func consumeChange(ctx context.Context, t *testing.T, codec *avrocodec.Codec, store *consent.Store, m kafka.Message) {
	t.Helper()
	rec, err := codec.Decode(ctx, m.Value)
	if err != nil {
		t.Fatalf("decode: %v", err) // the test writes only decodable records
	}
	if rec.Schema.FullName != ChangeSchema {
		return // dead letter: wrong_schema
	}
	c, err := consent.ChangeFromNative(rec.Value)
	if err == nil {
		c = c.BoundRestrictiveID()
		err = c.Validate()
	}
	if err == nil {
		c, err = c.BoundCapturedAt(m.Time, consent.DefaultMaxClockSkew)
	}
	if err != nil {
		return // dead letter: invalid_change
	}
	if _, err := store.ApplyWith(ctx, c, consent.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// changeGen draws random consent histories of one subject: few purposes and
// change ids (so ids repeat across changes), captured_at in a few
// milliseconds (ties), record timestamps before, at and after captured_at
// (the clock rule, inside and beyond the skew, and no timestamp at all),
// refused changes (an empty or reserved purpose, a GRANT without source or
// notice version, an unknown excluded category, an expiry not after
// captured_at, an over-long GRANT id, an empty id), over-long restrictive
// ids, expiries before and after the ledger's now, and redeliveries.
type changeGen struct {
	rnd *rand.Rand
}

func (g *changeGen) pick(list ...string) string { return list[g.rnd.IntN(len(list))] }

func (g *changeGen) one(subject string, r0 time.Time) (consent.Change, time.Time) {
	long := strings.Repeat("z", 250)
	c := consent.Change{
		SubjectID: subject,
		ChangeID:  g.pick("a", "b", "c", "d", "ab", long+"1234567", long+"12345678", ""),
		Purpose:   g.pick("p", "p", "q", "q", "r", "!x", ""),
	}
	switch n := g.rnd.IntN(20); {
	case n < 8:
		c.Action = consent.ActionGrant
	case n < 12:
		c.Action = consent.ActionDeny
	case n < 16:
		c.Action = consent.ActionWithdraw
	default:
		c.Action = consent.ActionErase
		if g.rnd.IntN(2) == 0 {
			c.Purpose = ""
		}
	}
	c.LegalBasis = consent.LegalBasis(g.pick(string(consent.BasisConsent), string(consent.BasisConsent), string(consent.BasisLegitimateInterest)))
	c.Source, c.NoticeVersion = g.pick("web", "web", "web", "app", ""), g.pick("n1", "n1", "n1", "n2", "")
	switch g.rnd.IntN(8) {
	case 0:
		c.ExcludedCategories = []string{"user.health"}
	case 1:
		c.ExcludedCategories = []string{"user.contact.*", "user.device"}
	case 2:
		if g.rnd.IntN(3) == 0 {
			c.ExcludedCategories = []string{"health"} // unknown: refused on a GRANT
		}
	}
	recorded := r0.Add(time.Duration(g.rnd.IntN(6)) * time.Millisecond)
	skew := consent.DefaultMaxClockSkew
	deltas := []time.Duration{-2 * time.Millisecond, -time.Millisecond, 0, 0, 0, time.Millisecond, 2 * time.Millisecond,
		skew - time.Millisecond, skew, skew + time.Millisecond, time.Hour, -time.Hour, -skew}
	c.CapturedAt = recorded.Add(deltas[g.rnd.IntN(len(deltas))])
	switch g.rnd.IntN(6) {
	case 0:
		c.ExpiresAt = r0.Add(-30 * time.Minute) // before now, often not after captured_at
	case 1:
		c.ExpiresAt = r0.Add(30 * time.Minute) // before the ledger's now: expired
	case 2:
		c.ExpiresAt = r0.Add(5 * time.Hour) // after now
	case 3:
		c.ExpiresAt = c.CapturedAt // not after captured_at: refused on a GRANT
	}
	if g.rnd.IntN(12) == 0 {
		recorded = time.Time{} // no timestamp: no clock rule
	}
	return c, recorded
}

// TestReviewPropertyWinnerIsWhatRedisHolds draws random histories of
// consent changes, writes each as the bytes of a consent.changes record (one
// partition, redeliveries at later offsets), feeds the records to the
// consumer's apply path on a real Redis (consumeChange) and to the ledger's
// decoder, ingest and Subject on SQLite, and checks that for every purpose
// the ledger names the status, deciding change, captured_at, legal basis,
// excluded categories and expiry that the consent store holds (State.Check
// at the ledger's now), and that the change it marks won is that change. A
// difference is a false statement to the data subject about which of their
// changes the pipeline decides by.
func TestReviewPropertyWinnerIsWhatRedisHolds(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	r0 := t0.Add(time.Hour)
	now := r0.Add(time.Hour)
	ls, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REVIEW_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 12))
	g := &changeGen{rnd: rng}
	iterations := 400
	if testing.Short() {
		iterations = 60
	}
	var offset int64
	failures := 0
	for it := range iterations {
		store := consent.NewStore(rdb, fmt.Sprintf("%sw%d:", redistest.PrefixFor(t), it))
		subject := fmt.Sprintf("subject-%d", it)
		var msgs []kafka.Message
		var trace []string
		for range 1 + rng.IntN(12) {
			var m kafka.Message
			if len(msgs) > 0 && rng.IntN(8) == 0 {
				m = msgs[rng.IntN(len(msgs))] // a redelivery: the same record again
				trace = append(trace, trace[slices.IndexFunc(msgs, func(x kafka.Message) bool { return x.Offset == m.Offset })])
			} else {
				c, recorded := g.one(subject, r0)
				b, err := codec.EncodeSingle(ChangeSchema, c.Native())
				if err != nil {
					t.Fatal(err)
				}
				m = kafka.Message{Topic: "consent.changes", Key: []byte(subject), Value: b, Time: recorded}
				id := c.ChangeID
				if len(id) > 12 {
					id = fmt.Sprintf("long(%d)…%s", len(id), id[len(id)-4:])
				}
				var rt string
				if recorded.IsZero() {
					rt = "none"
				} else {
					rt = strconv.FormatInt(recorded.Sub(r0).Milliseconds(), 10)
				}
				exp := "none"
				if !c.ExpiresAt.IsZero() {
					exp = strconv.FormatInt(c.ExpiresAt.Sub(r0).Milliseconds(), 10) + "ms"
				}
				trace = append(trace, fmt.Sprintf("%s %s/%q captured %+dms recorded %s expires %s basis %s src %q nv %q excl %q",
					c.Action, id, c.Purpose, c.CapturedAt.Sub(r0).Milliseconds(), rt, exp, c.LegalBasis, c.Source, c.NoticeVersion, c.ExcludedCategories))
			}
			m.Offset = offset
			offset++
			msgs = append(msgs, m)
		}
		var batch Batch
		for _, m := range msgs {
			consumeChange(ctx, t, codec, store, m)
			if err := dec.Add(ctx, &batch, HoldsChanges, m); err != nil {
				t.Fatal(err)
			}
		}
		if len(batch.Undecodable) > 0 {
			t.Fatalf("the ledger could not decode %d records", len(batch.Undecodable))
		}
		if err := ls.Ingest(ctx, &batch); err != nil {
			t.Fatal(err)
		}
		h, err := ls.Subject(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		states, err := store.Lookup(ctx, []string{subject})
		if err != nil {
			t.Fatal(err)
		}
		if diffs := compareWinner(h, states[subject], now); len(diffs) > 0 {
			failures++
			t.Errorf("seed %d, history %d: the ledger and the consent store disagree:\n  %s\nrecords in offset order:\n  %s",
				seed, it, strings.Join(diffs, "\n  "), strings.Join(trace, "\n  "))
			if failures >= 3 {
				t.FailNow()
			}
		}
	}
}

// compareWinner lists the differences between the ledger's account of a
// subject's consent and the store's state st at now.
func compareWinner(h *SubjectHistory, st *consent.State, now time.Time) []string {
	var diffs []string
	got := map[string]PurposeOutcome{}
	for _, p := range h.Purposes {
		got[p.Purpose] = p
	}
	purposes := []string{"p", "q", "r"}
	for p := range got {
		if !slices.Contains(purposes, p) {
			diffs = append(diffs, fmt.Sprintf("the ledger lists purpose %q, which no valid change names", p))
		}
	}
	for _, p := range purposes {
		v := st.Check(p, now)
		po, listed := got[p]
		want := string(v.Reason)
		if v.Reason == consent.ReasonGranted {
			want = StatusGranted
		}
		if v.Reason == consent.ReasonNeverAsked || v.Reason == consent.ReasonUnknownSubject {
			if listed {
				diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger says %s by %.24q, the store has no change for it (%s)", p, po.Status, po.ChangeID, v.Reason))
			}
			continue
		}
		if !listed {
			// An erasure decides purposes the ledger may not list when
			// no change of theirs was applied; say so only otherwise.
			if v.Reason != consent.ReasonErased {
				diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger lists nothing, the store says %s by %.24q", p, want, v.ChangeID))
			}
			continue
		}
		if po.Status != want || po.ChangeID != v.ChangeID || !po.CapturedAt.Equal(v.CapturedAt) {
			diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger says %s by %.24q at %d ms, the store %s by %.24q at %d ms",
				p, po.Status, po.ChangeID, po.CapturedAt.UnixMilli(), want, v.ChangeID, v.CapturedAt.UnixMilli()))
			continue
		}
		if v.Reason != consent.ReasonErased && v.Reason != consent.ReasonChangeIDTooLong {
			if po.LegalBasis != string(v.LegalBasis) || !slices.Equal(nonNil(po.ExcludedCategories), nonNil(v.ExcludedCategories)) {
				diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger says basis %s excluding %q, the store basis %s excluding %q",
					p, po.LegalBasis, po.ExcludedCategories, v.LegalBasis, v.ExcludedCategories))
			}
			ps := st.Purposes[p]
			var exp time.Time
			if po.ExpiresAt != nil {
				exp = *po.ExpiresAt
			}
			if v.Reason == consent.ReasonGranted && !exp.Equal(ps.ExpiresAt) {
				diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger says the grant expires at %v, the store at %v", p, exp, ps.ExpiresAt))
			}
		}
		// The change marked won for the purpose is the deciding one.
		var won []string
		for _, c := range h.Changes {
			if !c.Won {
				continue
			}
			id := c.ChangeID
			if c.AppliedChangeID != "" {
				id = c.AppliedChangeID
			}
			switch {
			case c.Action == string(consent.ActionErase) && slices.Contains(c.ErasedPurposes, p):
				won = append(won, id)
			case c.Action != string(consent.ActionErase) && c.Purpose == p:
				won = append(won, id)
			}
		}
		if len(won) != 1 || won[0] != v.ChangeID {
			diffs = append(diffs, fmt.Sprintf("purpose %s: the changes marked won are %.24q, the store decides by %.24q", p, won, v.ChangeID))
		}
	}
	return diffs
}

// TestReviewWinnerBeyondTwoToThe53Milliseconds: a record without a
// timestamp (Kafka's -1 or 0: kafka-go reads it as the zero time, and the
// clock rule applies no bound) may carry any captured_at. The store's Lua
// script compares captured_at as Lua numbers, doubles, which cannot tell
// 2^53 from 2^53+1 milliseconds, so there a DENY captured one millisecond
// after a GRANT loses to it on the change ids' tie-break, while the ledger
// (and consent's own rule, in int64) says the DENY won. The ledger then
// tells the data subject their consent is denied while the pipeline
// passes their events as granted.
func TestReviewWinnerBeyondTwoToThe53Milliseconds(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	const subject = "subject-far-future"
	at := time.UnixMilli(1 << 53).UTC()
	changes := []consent.Change{
		{ChangeID: "b-grant", SubjectID: subject, Purpose: "p", Action: consent.ActionGrant, LegalBasis: consent.BasisConsent,
			Source: "web", NoticeVersion: "n1", CapturedAt: at},
		{ChangeID: "a-deny", SubjectID: subject, Purpose: "p", Action: consent.ActionDeny, LegalBasis: consent.BasisConsent,
			Source: "web", NoticeVersion: "n1", CapturedAt: at.Add(time.Millisecond)},
	}
	var batch Batch
	for i, c := range changes {
		b, err := codec.EncodeSingle(ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		m := kafka.Message{Topic: "consent.changes", Offset: int64(i), Key: []byte(subject), Value: b} // no timestamp
		consumeChange(ctx, t, codec, store, m)
		if err := dec.Add(ctx, &batch, HoldsChanges, m); err != nil {
			t.Fatal(err)
		}
	}
	now := t0
	ls, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.Ingest(ctx, &batch); err != nil {
		t.Fatal(err)
	}
	h, err := ls.Subject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	states, err := store.Lookup(ctx, []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	if v := states[subject].Check("p", now); v.ChangeID != "a-deny" {
		t.Errorf("the consent store decides purpose p by %s (%s): the DENY captured 1 ms after the GRANT must win", v.ChangeID, v.Reason)
	}
	if diffs := compareWinner(h, states[subject], now); len(diffs) > 0 {
		t.Errorf("the ledger and the consent store disagree:\n  %s", strings.Join(diffs, "\n  "))
	}
}
