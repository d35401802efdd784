package signals

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReviewSignalsSpecialFeatureOptOutOwesNotice shows that taking back a
// TCF special feature (precise geolocation) is a take-away that owes no
// revocation notice. A customer in DE first opts in to every purpose and
// to special feature 1; later they keep the purposes but opt out of
// special feature 1. The engine turns the second submission into a GRANT
// of marketing that excludes user.location.precise: correct as state, but
// a GRANT never owes a notice (consent.NoticeGrantReplaced is for WITHDRAW
// and DENY), so the recipients who got precise location under the first
// grant are never told that consent for it is gone. Against a real Redis
// and the real consent.Store: the second change must owe a notice.
func TestReviewSignalsSpecialFeatureOptOutOwesNotice(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	store := consent.NewStore(redistest.Start(t).Client(t), "review:")
	ctx := context.Background()
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	marketing := func(at time.Time, features []int) consent.Change {
		d := &Decoded{TCF: []*tcf.TCString{tc(all, nil, features)}}
		for _, c := range ChangesFrom(pol, Submission{SubjectID: "customer-sf", CapturedAt: at, Jurisdiction: "DE",
			Signals: []Signal{{Type: TypeTCF, Value: at.String()}}}, d) {
			if c.Purpose == "marketing" {
				return c
			}
		}
		t.Fatal("no marketing change")
		return consent.Change{}
	}
	first := marketing(t0, []int{1})
	if first.Action != consent.ActionGrant || len(first.ExcludedCategories) != 0 {
		t.Fatalf("first change %+v, want a GRANT without exclusions", first)
	}
	if _, err := store.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := marketing(t0.Add(time.Hour), nil)
	if !slices.Contains(second.ExcludedCategories, "user.location.precise") {
		t.Fatalf("second change %+v, want precise location excluded", second)
	}
	out, err := store.Apply(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Applied {
		t.Fatalf("second change not applied: %+v", out)
	}
	if !out.NoticeDue {
		t.Errorf("opting out of precise geolocation (%s %s excluding %v) replaced a grant that included it, and owes no revocation notice",
			second.Action, second.Purpose, second.ExcludedCategories)
	}
}
