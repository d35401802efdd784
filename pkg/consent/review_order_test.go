package consent

import (
	"errors"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestReviewNewestWinsBeyondTwoToThe53Milliseconds: Apply promises that
// the newest captured_at in milliseconds wins (then the greater change
// id), and State.Check, the ledger and the intake compare int64
// milliseconds. The Lua script compares tonumber(ARGV[3]) and the stored
// JSON "t" as Lua numbers (doubles), which cannot tell 2^53 from 2^53+1:
// there the older GRANT with the greater id beat the DENY one millisecond
// newer, and the subject was granted (the review's finding; Apply accepted
// both). Now the store refuses a captured_at after MaxCapturedAt, which is
// exact as a double, the clock rule bounds every change to it (a GRANT
// after it refused, a restrictive change moved back to it, with or without
// a receive time), and at the bound the newest still wins in both orders.
func TestReviewNewestWinsBeyondTwoToThe53Milliseconds(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	at := time.UnixMilli(1 << 53).UTC()
	grant := Change{ChangeID: "b-grant", SubjectID: "s", Purpose: "p", Action: ActionGrant, LegalBasis: BasisConsent,
		Source: "web", NoticeVersion: "n1", CapturedAt: at}
	deny := Change{ChangeID: "a-deny", SubjectID: "s", Purpose: "p", Action: ActionDeny, CapturedAt: at.Add(time.Millisecond)}
	s := NewStore(srv.Client(t), redistest.PrefixFor(t)+"far:")
	for _, c := range []Change{grant, deny} {
		if _, err := s.Apply(ctx, c); !errors.Is(err, ErrInvalidChange) {
			t.Errorf("Apply of a %s captured at 2^53 ms: %v, want an invalid change", c.Action, err)
		}
	}
	if _, err := grant.BoundCapturedAt(time.Time{}, DefaultMaxClockSkew); !errors.Is(err, ErrInvalidChange) {
		t.Errorf("clock rule without a receive time kept a GRANT at 2^53 ms: %v", err)
	}
	bounded, err := deny.BoundCapturedAt(time.Time{}, DefaultMaxClockSkew)
	if err != nil || !bounded.CapturedAt.Equal(MaxCapturedAt) {
		t.Fatalf("clock rule without a receive time: DENY at %v, %v; want it moved back to %v", bounded.CapturedAt, err, MaxCapturedAt)
	}

	// At the bound, one millisecond still decides, in both orders.
	grant.CapturedAt = MaxCapturedAt.Add(-time.Millisecond)
	for _, order := range [][]Change{{grant, bounded}, {bounded, grant}} {
		s := NewStore(srv.Client(t), redistest.PrefixFor(t)+order[0].ChangeID+":")
		for _, c := range order {
			if _, err := s.Apply(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.Lookup(ctx, []string{"s"})
		if err != nil {
			t.Fatal(err)
		}
		if v := st["s"].Check("p", at); v.ChangeID != "a-deny" || v.Allowed {
			t.Errorf("applied %s then %s: purpose p is %s by %s; the DENY captured 1 ms later must win", order[0].ChangeID, order[1].ChangeID, v.Reason, v.ChangeID)
		}
	}
}
