package signals

import (
	"context"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestReview4SignalsResentGrantOutdatesRefusalInBetween shows that sending
// the same submission again, which the intake's 503 answer says is safe
// ("their change ids are the same"), can make its GRANT beat a refusal the
// customer made in between. The clock rule dates a grant captured a little
// ahead of its receive time (within the skew) at the receive time, so the
// same GRANT, with the same change id, gets a later captured_at on every
// resend. The store keeps per purpose only the newest (captured_at, change
// id) (pkg/consent newer): it has no memory of the id it applied, so the
// resent copy is simply newer than the refusal. Here the customer's device
// clock runs 2 minutes ahead: at T0 they grant marketing through Consent
// Mode (received T0, dated T0); at T0+30s they refuse it (dated T0+30s);
// the first POST's produce timed out (503) and the client resends at
// T0+90s: the same GRANT, dated T0+90s, now wins, and marketing is allowed
// after the customer refused it. The same happens when the submission
// reaches consent.signals twice (a producer retry appends a second record
// with a later LogAppendTime) or both the intake and the topic. A resend
// must not change a change's captured_at (e.g. date the grant at the
// submission's captured_at bounded by the first receive, or keep the
// refusal's tie-break: bound a moved grant to no later than captured_at -
// skew), or the id must change with it.
func TestReview4SignalsResentGrantOutdatesRefusalInBetween(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ahead := 2 * time.Minute // the device clock
	skew := consent.DefaultMaxClockSkew

	grantSub := Submission{SubjectID: "customer-resend", CapturedAt: t0.Add(ahead), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted}}}}
	refuseSub := Submission{SubjectID: "customer-resend", CapturedAt: t0.Add(30 * time.Second), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Denied}}}}
	marketing := func(sub Submission, received time.Time) consent.Change {
		t.Helper()
		cs, err := Changes(pol, sub)
		if err != nil {
			t.Fatal(err)
		}
		kept, refused := BoundChanges(cs, received, skew)
		if len(refused) > 0 {
			t.Fatalf("setup: the clock rule refused %v", refused)
		}
		for _, c := range kept {
			if c.Purpose == "marketing" {
				return c
			}
		}
		t.Fatalf("setup: no marketing change from %+v", sub.Signals)
		return consent.Change{}
	}
	first := marketing(grantSub, t0)
	deny := marketing(refuseSub, t0.Add(30*time.Second))
	if first.Action != consent.ActionGrant || !deny.Action.Restrictive() || !review4Wins(deny, first) {
		t.Fatalf("setup: first GRANT %s at %s, then %s at %s: the refusal must win", first.ChangeID, first.CapturedAt, deny.Action, deny.CapturedAt)
	}
	resent := marketing(grantSub, t0.Add(90*time.Second))
	if resent.ChangeID != first.ChangeID {
		t.Fatalf("setup: the resend has another change id (%s, first %s)", resent.ChangeID, first.ChangeID)
	}
	if review4Wins(resent, deny) {
		t.Errorf("the resent GRANT %s (same id as the first, which lost) is dated %s, after the %s dated %s: resending the same submission undoes the customer's later refusal",
			resent.ChangeID, resent.CapturedAt.Format(time.RFC3339), deny.Action, deny.CapturedAt.Format(time.RFC3339))
	}
}

// TestReview4SignalsResentGrantOutdatesRefusalInStore is the store's side
// of TestReview4SignalsResentGrantOutdatesRefusalInBetween, on a real Redis
// (pkg/redistest) and consent.Store: the resent GRANT, with the id of the
// one the refusal replaced, is applied over the refusal and marketing is
// allowed after the customer refused it.
func TestReview4SignalsResentGrantOutdatesRefusalInStore(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	ctx := context.Background()
	pol := mustPolicy(t, testPolicy)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const subject = "customer-resend-store"
	grantSub := Submission{SubjectID: subject, CapturedAt: t0.Add(2 * time.Minute), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted}}}}
	refuseSub := Submission{SubjectID: subject, CapturedAt: t0.Add(30 * time.Second), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Denied}}}}
	send := func(sub Submission, received time.Time) {
		t.Helper()
		cs, err := Changes(pol, sub)
		if err != nil {
			t.Fatal(err)
		}
		kept, _ := BoundChanges(cs, received, consent.DefaultMaxClockSkew)
		for _, c := range kept {
			if _, err := store.Apply(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(at time.Time) consent.Verdict {
		t.Helper()
		states, err := store.Lookup(ctx, []string{subject})
		if err != nil {
			t.Fatal(err)
		}
		return states[subject].Check("marketing", at)
	}
	send(grantSub, t0)
	send(refuseSub, t0.Add(30*time.Second))
	if v := check(t0.Add(time.Minute)); v.Allowed {
		t.Fatalf("setup: marketing allowed (by %s) right after the refusal", v.ChangeID)
	}
	send(grantSub, t0.Add(90*time.Second)) // the 503 retry
	if v := check(t0.Add(2 * time.Minute)); v.Allowed {
		t.Errorf("marketing is allowed (by %s, the resent grant) after the customer refused it at T0+30s", v.ChangeID)
	}
}
