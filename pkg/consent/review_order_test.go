package consent

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestReviewNewestWinsBeyondTwoToThe53Milliseconds: Apply promises that
// the newest captured_at in milliseconds wins (then the greater change
// id), and State.Check, the ledger and the intake compare int64
// milliseconds. The Lua script compares tonumber(ARGV[3]) and the stored
// JSON "t" as Lua numbers (doubles), which cannot tell 2^53 from 2^53+1:
// there the older GRANT with the greater id beats the DENY one millisecond
// newer, and the subject is granted. Validate accepts such a captured_at,
// and the clock rule bounds nothing for a record without a timestamp (the
// consumer) or a change read back by a rebuild of such records.
func TestReviewNewestWinsBeyondTwoToThe53Milliseconds(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	at := time.UnixMilli(1 << 53).UTC()
	grant := Change{ChangeID: "b-grant", SubjectID: "s", Purpose: "p", Action: ActionGrant, LegalBasis: BasisConsent,
		Source: "web", NoticeVersion: "n1", CapturedAt: at}
	deny := Change{ChangeID: "a-deny", SubjectID: "s", Purpose: "p", Action: ActionDeny, CapturedAt: at.Add(time.Millisecond)}
	for _, order := range [][]Change{{grant, deny}, {deny, grant}} {
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
