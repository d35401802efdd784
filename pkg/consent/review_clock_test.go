package consent

import (
	"fmt"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestReviewStateFromBeforeTheBoundDoesNotOutliveARestriction: until
// MaxCapturedAt, Apply stored a change of any date: a GRANT from a record
// without timestamp (no clock rule) dated in the year 20000 is in the
// store of a running deployment. The store is a cache, not rebuilt by an
// upgrade. Now every later DENY or ERASE, however late its captured_at, is
// moved back to MaxCapturedAt and loses to that GRANT for ever: the
// subject stays granted (before the bound, the DENY dated after it won),
// and the ledger, which applies the new rule to the whole history, says
// denied. Such a stored state must not stand: the store fails closed on it
// (a CorruptError, as for any state the current rules cannot have written)
// or the restrictive change wins.
func TestReviewStateFromBeforeTheBoundDoesNotOutliveARestriction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	far := MaxCapturedAt.AddDate(10000, 0, 0) // year 20000: exact as a double, stored by the previous release
	for _, tc := range []struct {
		name string
		stop Change
	}{
		{"DENY", Change{ChangeID: "a-deny", SubjectID: "s", Purpose: "p", Action: ActionDeny, CapturedAt: far.AddDate(1, 0, 0)}},
		{"ERASE", Change{ChangeID: "a-erase", SubjectID: "s", Action: ActionErase, CapturedAt: far.AddDate(1, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(rdb, redistest.PrefixFor(t)+tc.name+":")
			// The value the previous release's Apply wrote for the GRANT.
			old := fmt.Sprintf(`{"s":"granted","c":"z-grant","t":%d,"b":"CONSENT","src":"web","n":"n1"}`, far.UnixMilli())
			if err := rdb.HSet(ctx, s.Key("s"), "p", old).Err(); err != nil {
				t.Fatal(err)
			}
			c, err := tc.stop.BoundCapturedAt(time.Time{}, DefaultMaxClockSkew)
			if err != nil {
				t.Fatal(err)
			}
			_, applyErr := s.Apply(ctx, c)
			st, lookupErr := s.Lookup(ctx, []string{"s"})
			if applyErr != nil || lookupErr != nil {
				return // failed closed
			}
			if v := st["s"].Check("p", MaxCapturedAt); v.Allowed {
				t.Errorf("after a %s captured after the stored GRANT, purpose p is %s by %s: the GRANT stored by the previous release outlives it for ever",
					tc.name, v.Reason, v.ChangeID)
			}
		})
	}
}

// TestReviewChangeIDsThatAreNotUTF8OrderAsGoDoes: the store keeps a
// change id in the JSON of its state, and encoding/json writes bytes that
// are not UTF-8 as U+FFFD: "a\xff" is stored as "a\uFFFD" and the script
// then compares a new change's raw id with that other string. A GRANT and
// a DENY captured in the same millisecond then decide by the order they
// were applied (the state no longer depends only on the set of changes:
// a rebuild decides otherwise), and the winner differs from the rule
// (the greater id wins) that State.Check and the ledger apply.
func TestReviewChangeIDsThatAreNotUTF8OrderAsGoDoes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	at := time.UnixMilli(1_772_000_000_000).UTC()
	grant := Change{ChangeID: "a\xff", SubjectID: "s", Purpose: "p", Action: ActionGrant, LegalBasis: BasisConsent,
		Source: "web", NoticeVersion: "n1", CapturedAt: at}
	deny := Change{ChangeID: "a\xfe", SubjectID: "s", Purpose: "p", Action: ActionDeny, CapturedAt: at}
	var verdicts []string
	for _, order := range [][]Change{{grant, deny}, {deny, grant}} {
		s := NewStore(srv.Client(t), redistest.PrefixFor(t)+fmt.Sprintf("%d:", len(verdicts)))
		for _, c := range order {
			c = c.BoundRestrictiveID() // as the consumer does
			if c.Validate() != nil {
				continue // refused (dead-lettered): never applied
			}
			if _, err := s.Apply(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.Lookup(ctx, []string{"s"})
		if err != nil {
			t.Fatal(err)
		}
		v := st["s"].Check("p", at)
		verdicts = append(verdicts, fmt.Sprintf("%s by %q", v.Reason, v.ChangeID))
	}
	if verdicts[0] != verdicts[1] {
		t.Errorf("the GRANT then the DENY: %s; the DENY then the GRANT: %s: the state depends on the order of application", verdicts[0], verdicts[1])
	}
}
