package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
)

func chg(id, purpose, action string, at time.Duration) ChangeOutcome {
	c := ChangeOutcome{ChangeID: id, Purpose: purpose, Action: action, CapturedAt: t0.Add(at), LegalBasis: "CONSENT",
		ChangeSource: "web", NoticeVersion: "n1"}
	if action == "ERASE" {
		c.Purpose, c.LegalBasis = "", ""
	}
	return c
}

func expiring(c ChangeOutcome, at time.Duration) ChangeOutcome {
	e := t0.Add(at)
	c.ExpiresAt = &e
	return c
}

// TestResolveTable is the winner rule, case by case: per change the
// verdict (won, or lost with code and winner), per purpose the status and
// deciding change.
func TestResolveTable(t *testing.T) {
	now := t0.Add(100 * time.Hour)
	type verdict struct {
		won      bool
		lost, to string
	}
	cases := []struct {
		name     string
		changes  []ChangeOutcome
		verdicts map[string]verdict // by change id
		purposes map[string][2]string
	}{
		{"newest wins", []ChangeOutcome{chg("b", "m", "DENY", 2*time.Hour), chg("a", "m", "GRANT", time.Hour)},
			map[string]verdict{"a": {false, LostSuperseded, "b"}, "b": {true, "", ""}},
			map[string][2]string{"m": {StatusDenied, "b"}}},
		{"same millisecond: greater change id wins", []ChangeOutcome{
			chg("x1", "m", "GRANT", time.Hour), chg("x2", "m", "WITHDRAW", time.Hour+400*time.Microsecond)},
			map[string]verdict{"x1": {false, LostTie, "x2"}, "x2": {true, "", ""}},
			map[string][2]string{"m": {StatusWithdrawn, "x2"}}},
		{"purposes are independent", []ChangeOutcome{chg("a", "m", "GRANT", time.Hour), chg("b", "n", "DENY", 2*time.Hour)},
			map[string]verdict{"a": {true, "", ""}, "b": {true, "", ""}},
			map[string][2]string{"m": {StatusGranted, "a"}, "n": {StatusDenied, "b"}}},
		{"erase applies to every purpose captured before it", []ChangeOutcome{
			chg("a", "m", "GRANT", time.Hour), chg("b", "n", "GRANT", 2*time.Hour), chg("e", "", "ERASE", 3*time.Hour)},
			map[string]verdict{"a": {false, LostErased, "e"}, "b": {false, LostErased, "e"}, "e": {true, "", ""}},
			map[string][2]string{"m": {StatusErased, "e"}, "n": {StatusErased, "e"}}},
		{"a change after the erase decides again", []ChangeOutcome{
			chg("a", "m", "GRANT", time.Hour), chg("e", "", "ERASE", 3*time.Hour), chg("c", "m", "GRANT", 4*time.Hour), chg("d", "n", "DENY", 2*time.Hour)},
			map[string]verdict{"a": {false, LostSuperseded, "c"}, "c": {true, "", ""}, "d": {false, LostErased, "e"}, "e": {true, "", ""}},
			map[string][2]string{"m": {StatusGranted, "c"}, "n": {StatusErased, "e"}}},
		{"tie with the erase: greater id wins", []ChangeOutcome{chg("z", "m", "GRANT", time.Hour), chg("e", "", "ERASE", time.Hour),
			chg("a", "n", "GRANT", time.Hour)},
			map[string]verdict{"z": {true, "", ""}, "a": {false, LostErased, "e"}, "e": {true, "", ""}},
			map[string][2]string{"m": {StatusGranted, "z"}, "n": {StatusErased, "e"}}},
		{"a newer erase supersedes an older one", []ChangeOutcome{chg("e1", "", "ERASE", time.Hour), chg("e2", "", "ERASE", 2*time.Hour)},
			map[string]verdict{"e1": {false, LostSuperseded, "e2"}, "e2": {true, "", ""}},
			map[string][2]string{}},
		{"an expired grant wins, expired", []ChangeOutcome{expiring(chg("a", "m", "GRANT", time.Hour), 50*time.Hour)},
			map[string]verdict{"a": {true, "", ""}},
			map[string][2]string{"m": {StatusExpired, "a"}}},
		{"expiry exactly now is expired", []ChangeOutcome{expiring(chg("a", "m", "GRANT", time.Hour), 100*time.Hour)},
			map[string]verdict{"a": {true, "", ""}},
			map[string][2]string{"m": {StatusExpired, "a"}}},
		{"an unexpired grant is granted", []ChangeOutcome{expiring(chg("a", "m", "GRANT", time.Hour), 101*time.Hour)},
			map[string]verdict{"a": {true, "", ""}},
			map[string][2]string{"m": {StatusGranted, "a"}}},
		{"a redelivery of the winner", []ChangeOutcome{chg("a", "m", "GRANT", time.Hour), chg("a", "m", "GRANT", time.Hour)},
			map[string]verdict{"a#1": {true, "", ""}, "a#2": {false, LostDuplicate, "a"}},
			map[string][2]string{"m": {StatusGranted, "a"}}},
		{"an invalid action never applies", []ChangeOutcome{chg("a", "m", "GRANT", time.Hour), chg("b", "m", "MAYBE", 2*time.Hour)},
			map[string]verdict{"a": {true, "", ""}, "b": {false, LostInvalid, ""}},
			map[string][2]string{"m": {StatusGranted, "a"}}},
		// consent-sync refuses a GRANT with an over-long id (Validate), so
		// it decides nothing; a restrictive one is applied under a bounded
		// id (TestReviewSubjectWinnerIsWhatTheConsumerApplies).
		{"an over-long grant id is refused", []ChangeOutcome{chg(string(make([]byte, 300)), "m", "GRANT", time.Hour)},
			map[string]verdict{string(make([]byte, 300)): {false, LostRefused, ""}},
			map[string][2]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, purposes := Resolve(tc.changes, now)
			seen := map[string]int{}
			for i, c := range got {
				if i > 0 && newer(&got[i-1], &got[i]) {
					t.Errorf("changes not in time order at %d", i)
				}
				id := c.ChangeID
				seen[id]++
				if _, ok := tc.verdicts[id]; !ok {
					id = fmt.Sprintf("%s#%d", id, seen[id])
				}
				want, ok := tc.verdicts[id]
				if !ok {
					if tc.verdicts != nil {
						t.Errorf("change %.10q: no expectation", id)
					}
					continue
				}
				if c.Won != want.won || c.Lost != want.lost || c.LostTo != want.to {
					t.Errorf("change %s: won %v lost %q to %q (%s); want won %v lost %q to %q", id, c.Won, c.Lost, c.LostTo, c.Why, want.won, want.lost, want.to)
				}
				if !c.Won && c.Why == "" {
					t.Errorf("change %s lost without a why", id)
				}
			}
			if len(purposes) != len(tc.purposes) {
				t.Errorf("purposes %+v, want %v", purposes, tc.purposes)
			}
			for _, p := range purposes {
				if w := tc.purposes[p.Purpose]; p.Status != w[0] || p.ChangeID != w[1] {
					t.Errorf("purpose %s: %s by %q, want %s by %q", p.Purpose, p.Status, p.ChangeID, w[0], w[1])
				}
			}
		})
	}
	// The why of each lost code.
	got, _ := Resolve([]ChangeOutcome{chg("a", "m", "GRANT", time.Hour), chg("b", "m", "DENY", 2*time.Hour)}, now)
	if got[0].Why != "superseded by b captured later" {
		t.Errorf("why = %q", got[0].Why)
	}
}

// TestResolveMatchesConsentStore is the property that Resolve is the
// pipeline's rule: random changes applied to the real consent store (real
// Redis) in random order give, for every purpose, the verdict that
// Resolve's winner implies.
func TestResolveMatchesConsentStore(t *testing.T) {
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	ctx := context.Background()
	now := t0.Add(30 * time.Minute)
	r := rand.New(rand.NewPCG(11, 12))
	actions := []string{"GRANT", "GRANT", "DENY", "WITHDRAW", "ERASE"}
	for subj := 0; subj < 60; subj++ {
		sid := fmt.Sprintf("subject-%d", subj)
		var changes []ChangeOutcome
		for i := 0; i < 1+r.IntN(8); i++ {
			// Few distinct milliseconds, so that ties are common.
			c := chg(fmt.Sprintf("c%02d-%d", r.IntN(20), i), []string{"m", "n"}[r.IntN(2)], actions[r.IntN(len(actions))],
				time.Duration(r.IntN(4))*time.Minute)
			if c.Action == "GRANT" && r.IntN(3) == 0 {
				c = expiring(c, c.CapturedAt.Sub(t0)+time.Duration(1+r.IntN(60))*time.Minute)
			}
			changes = append(changes, c)
		}
		for _, i := range r.Perm(len(changes)) {
			c := changes[i]
			cc := consent.Change{ChangeID: c.ChangeID, SubjectID: sid, Purpose: c.Purpose, Action: consent.Action(c.Action),
				LegalBasis: consent.LegalBasis(c.LegalBasis), Source: "test", NoticeVersion: "n1", CapturedAt: c.CapturedAt}
			if c.ExpiresAt != nil {
				cc.ExpiresAt = *c.ExpiresAt
			}
			if _, err := store.Apply(ctx, cc); err != nil {
				t.Fatal(err)
			}
		}
		states, err := store.Lookup(ctx, []string{sid})
		if err != nil {
			t.Fatal(err)
		}
		_, purposes := Resolve(changes, now)
		byPurpose := map[string]PurposeOutcome{}
		for _, p := range purposes {
			byPurpose[p.Purpose] = p
		}
		for _, p := range []string{"m", "n"} {
			v := states[sid].Check(p, now)
			po, ok := byPurpose[p]
			want := string(v.Reason)
			if want == string(consent.ReasonGranted) {
				want = StatusGranted
			}
			got := po.Status
			if !ok {
				// No change for the purpose: erased if the subject was,
				// else never asked.
				got = string(consent.ReasonNeverAsked)
				for _, c := range changes {
					if c.Action == "ERASE" {
						got = StatusErased
					}
				}
				if got == StatusErased {
					_, po.ChangeID = erasureOf(changes)
				}
			}
			if got != want || po.ChangeID != v.ChangeID {
				t.Fatalf("subject %d purpose %s: Resolve says %s by %q, the consent store %s by %q; changes %+v",
					subj, p, got, po.ChangeID, want, v.ChangeID, changes)
			}
		}
	}
}

func erasureOf(cs []ChangeOutcome) (bool, string) {
	got, _ := Resolve(cs, t0)
	for _, c := range got {
		if c.Action == "ERASE" && c.Won {
			return true, c.ChangeID
		}
	}
	return false, ""
}

// FuzzResolve checks the invariants of the winner rule on arbitrary
// changes: the result does not depend on the order the changes arrive in;
// every purpose has exactly one deciding change, which is marked won (or
// is the erasure); every lost change names a change of the input that
// decides in its place, and that change is newer or the same change.
func FuzzResolve(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint64(1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4}, uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		actions := []string{"GRANT", "DENY", "WITHDRAW", "ERASE", "BOGUS"}
		var changes []ChangeOutcome
		for i := 0; i+2 < len(data) && len(changes) < 40; i += 3 {
			// A change id names one change: equal ids are redeliveries.
			purpose, action, at := []string{"m", "n", "o"}[data[i+1]%3], actions[data[i+2]%5], data[i+1]/3%4
			c := chg(fmt.Sprintf("c%d-%s-%s-%d-%d", data[i]%8, purpose, action, at, data[i+2]>>7), purpose, action, time.Duration(at)*time.Millisecond)
			if data[i+2]&0x80 != 0 {
				c = expiring(c, 2*time.Millisecond)
			}
			changes = append(changes, c)
		}
		now := t0.Add(3 * time.Millisecond)
		got, purposes := Resolve(changes, now)
		shuffled := slices.Clone(changes)
		r := rand.New(rand.NewPCG(seed, 1))
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got2, purposes2 := Resolve(shuffled, now)
		if !reflect.DeepEqual(purposes, purposes2) {
			t.Fatalf("purposes depend on the arrival order: %+v vs %+v", purposes, purposes2)
		}
		if len(got) != len(changes) || len(got2) != len(changes) {
			t.Fatalf("changes lost")
		}
		// Same id, time and content sort the same way: compare verdicts.
		verdicts := func(cs []ChangeOutcome) []string {
			var out []string
			for _, c := range cs {
				out = append(out, fmt.Sprintf("%s/%s/%s/%d/%v/%s/%s", c.ChangeID, c.Purpose, c.Action, c.CapturedAt.UnixMilli(), c.Won, c.Lost, c.LostTo))
			}
			sort.Strings(out)
			return out
		}
		if !reflect.DeepEqual(verdicts(got), verdicts(got2)) {
			t.Fatalf("verdicts depend on the arrival order")
		}
		byID := map[string]*ChangeOutcome{}
		for i := range got {
			byID[got[i].ChangeID] = &got[i]
		}
		for _, c := range got {
			if c.Won == (c.Lost != "") {
				t.Fatalf("change %s: won %v and lost %q", c.ChangeID, c.Won, c.Lost)
			}
			if c.Lost != "" && c.Lost != LostInvalid {
				w, ok := byID[c.LostTo]
				if !ok || newer(&c, w) {
					t.Fatalf("change %s lost to %q, which is not a newer change of the input", c.ChangeID, c.LostTo)
				}
			}
		}
		for _, p := range purposes {
			w, ok := byID[p.ChangeID]
			if !ok {
				t.Fatalf("purpose %s decided by unknown change %q", p.Purpose, p.ChangeID)
			}
			if (p.Status == StatusErased) != (w.Action == "ERASE") {
				t.Fatalf("purpose %s: status %s by a %s", p.Purpose, p.Status, w.Action)
			}
		}
	})
}
