package explain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestEvaluateSignalsMatchesStore checks the state explain decides on
// against the real consent store: random consent histories (grants,
// denials, withdrawals and erasures, with captured_at ties) are applied to
// a consent.Store in Redis, the stored state is what explain gets as the
// consent file, and then the signals' changes are applied to the store as
// consent-sync applies them (the clock rule per change, signals.BoundChanges:
// a grant dated too far ahead is left out, the other changes applied). The
// state EvaluateSignals returns must be the one the store then holds, every
// purpose's Applied what the store's Apply said and its Refused set for
// exactly the changes the clock rule refuses; a submission whose every
// change is refused (consent-sync answers 400) must be an error.
func TestEvaluateSignalsMatchesStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := consent.NewStore(redistest.Start(t).Client(t), redistest.PrefixFor(t))
	pol, err := policy.Parse(repoFile(t, "pkg/policy/testdata/example.yaml"), "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(14, 4))
	now := goldenNow
	// Few distinct times, so that ties (same millisecond: the greater id
	// wins) are frequent. The histories use the first three; submissions
	// also the last two, after now: within the clock rule's skew (a grant
	// is moved back to now) and beyond it (a grant is refused, a
	// restrictive change moved back to now + skew).
	times := []time.Time{now.Add(-time.Hour), now.Add(-time.Millisecond), now, now.Add(10 * time.Minute), now.Add(20 * time.Minute)}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	purposes := []string{"marketing", "analytics", "personalisation", "sale"}
	actions := []consent.Action{consent.ActionGrant, consent.ActionDeny, consent.ActionWithdraw, consent.ActionErase}
	cmStates := []string{"ad_user_data", "ad_personalization", "analytics_storage", "ad_storage"}
	const trials = 150
	checked, lost, refusals, partial := 0, 0, 0, 0
	for trial := range trials {
		subject := fmt.Sprintf("s-%d", trial)
		for k := range rng.IntN(5) {
			a := actions[rng.IntN(len(actions))]
			c := consent.Change{ChangeID: fmt.Sprintf("chg-%d-%d", trial, k), SubjectID: subject, Action: a,
				CapturedAt: times[rng.IntN(3)], Source: "test", NoticeVersion: "v1"}
			if rng.IntN(3) == 0 {
				c.ChangeID = "sig-" + c.ChangeID // ties with the signals' ids both ways
			}
			if a != consent.ActionErase {
				c.Purpose = pick(purposes)
			}
			if a == consent.ActionGrant {
				c.LegalBasis = consent.BasisConsent
			}
			if _, err := store.Apply(ctx, c); err != nil {
				t.Fatalf("trial %d: apply %+v: %v", trial, c, err)
			}
		}
		before, err := store.Lookup(ctx, []string{subject})
		if err != nil {
			t.Fatal(err)
		}
		base := before[subject]

		sub := signals.Submission{SubjectID: subject, CapturedAt: times[rng.IntN(len(times))]}
		states := map[string]string{}
		for _, s := range cmStates {
			if rng.IntN(2) == 0 {
				states[s] = []string{signals.Granted, signals.Denied}[rng.IntN(2)]
			}
		}
		if len(states) > 0 {
			sub.Signals = append(sub.Signals, signals.Signal{Type: signals.TypeConsentMode, States: states})
		}
		if rng.IntN(3) == 0 {
			sub.Signals = append(sub.Signals, signals.Signal{Type: signals.TypeUSP, Value: pick([]string{"1YYN", "1YNN", "1---"})})
		}
		if rng.IntN(4) == 0 {
			sub.Signals = append(sub.Signals, signals.Signal{Type: signals.TypeGPC, Value: "1"})
		}
		if len(sub.Signals) == 0 {
			sub.Signals = []signals.Signal{{Type: signals.TypeGPC, Value: "1"}}
		}

		rep, got, err := EvaluateSignals(pol, sub, base, now)
		changes, cerr := signals.Changes(pol, sub)
		if cerr != nil {
			t.Fatal(cerr)
		}
		// The reference: consent-sync's path into the store (the intake's
		// and the signals consumer's): the clock rule per change, the kept
		// changes applied, the refused grants left out.
		for _, c := range changes {
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		}
		kept, refusedChanges := signals.BoundChanges(changes, now, consent.DefaultMaxClockSkew)
		if len(kept) == 0 && len(refusedChanges) > 0 {
			// consent-sync refuses the submission (400): nothing is
			// recorded, and explain must refuse it too.
			if err == nil {
				t.Fatalf("trial %d: consent-sync refuses the submission (%+v), explain does not", trial, refusedChanges)
			}
			refusals++
			continue
		}
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		applied := map[string]bool{}
		for _, c := range kept {
			out, err := store.Apply(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			applied[c.Purpose] = out.Applied
		}
		refused := map[string]bool{}
		for _, r := range refusedChanges {
			refused[r.Purpose] = true
		}
		if len(refused) > 0 {
			partial++
		}
		after, err := store.Lookup(ctx, []string{subject})
		if err != nil {
			t.Fatal(err)
		}
		want := after[subject]
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: explain's state\n%+v\nthe store's\n%+v\n(before: %+v)", trial, got, want, base)
		}
		for _, p := range rep.Purposes {
			if !p.Decided {
				if _, ok := applied[p.Purpose]; ok {
					t.Errorf("trial %d: %s has a change but is reported undecided", trial, p.Purpose)
				}
				continue
			}
			if p.Applied != applied[p.Purpose] {
				t.Errorf("trial %d: %s applied %v, the store says %v", trial, p.Purpose, p.Applied, applied[p.Purpose])
			}
			if (p.Refused != "") != refused[p.Purpose] {
				t.Errorf("trial %d: %s refused %q, consent-sync refuses it: %v", trial, p.Purpose, p.Refused, refused[p.Purpose])
			}
			checked++
			if !p.Applied {
				lost++
			}
		}
	}
	// The histories must exercise both sides of the order.
	if checked < trials || lost == 0 || lost == checked || refusals == 0 || partial == 0 {
		t.Errorf("%d decided purposes checked, %d lost to a newer change, %d submissions refused, %d with a grant refused and other changes kept: not a useful sample",
			checked, lost, refusals, partial)
	}
	t.Logf("%d decided purposes checked, %d lost to a newer change or erasure; %d submissions refused by the clock rule, %d with only some changes refused",
		checked, lost, refusals, partial)
}
