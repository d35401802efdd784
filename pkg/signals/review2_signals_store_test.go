package signals

import (
	"context"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReview2SignalsDayRoundedTCRefusalLostInStore is the store's side of
// TestReview2SignalsDayRoundedTCRefusalLosesToEarlierSameDayGrant, on a
// real Redis (pkg/redistest) and consent.Store: the customer grants
// marketing through Consent Mode at 10:00, then refuses it in the CMP at
// 15:00 (TC string LastUpdated = that day, 00:00, as CMPs write it). The
// store does not apply the DENY (dated 00:00, older than the 10:00 grant),
// owes no revocation notice, and marketing is still allowed afterwards.
func TestReview2SignalsDayRoundedTCRefusalLostInStore(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	ctx := context.Background()
	pol := mustPolicy(t, testPolicy)
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const subject = "customer-store-day"

	grantSub := Submission{SubjectID: subject, CapturedAt: day.Add(10 * time.Hour), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted}}}}
	for _, c := range ChangesFrom(pol, grantSub, &Decoded{ConsentMode: map[string]string{"ad_user_data": Granted}}) {
		if _, err := store.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	s := tc(nil, nil, nil)
	s.IsServiceSpecific = true
	s.Created, s.LastUpdated = day, day
	refuseSub := Submission{SubjectID: subject, CapturedAt: day.Add(15 * time.Hour), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeTCF, Value: "cookie"}}}
	for _, c := range ChangesFrom(pol, refuseSub, &Decoded{TCF: []*tcf.TCString{s}}) {
		out, err := store.Apply(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if c.Purpose == "marketing" && (!out.Applied || !out.NoticeDue) {
			t.Errorf("the %s of marketing made at 15:00 (dated %s): applied %v, notice due %v; the 10:00 grant stands",
				c.Action, c.CapturedAt.Format(time.RFC3339), out.Applied, out.NoticeDue)
		}
	}
	states, err := store.Lookup(ctx, []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	if v := states[subject].Check("marketing", day.Add(16*time.Hour)); v.Allowed {
		t.Errorf("marketing is allowed at 16:00 (by %s) after the customer refused it at 15:00", v.ChangeID)
	}
}
