package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
)

// TestReview4SignalsOptOutReversedIsNeverRecorded shows what "did not opt
// out grants nothing" (second review fix) costs: an objection made through
// signals can no longer be lifted through signals. A US customer opts out of
// sale in the CMP (usnat sale_opt_out = 1, notice given): WITHDRAW of sale.
// A week later the same customer changes their mind in the same CMP (the
// CMP now writes sale_opt_out = 2, notice given): Changes makes no change,
// so the WITHDRAW stays and sale stays refused for good; with the example's
// rules (every sale field is an opt-out) no signal can ever lift it, and the
// 200 answer says "the signals decide no purpose". For an opt-out purpose
// the customer's own "I no longer object" through the same channel that
// recorded the objection is the only choice they are offered (CCPA, usnat).
// Fail closed, and chosen on purpose (SignalOptOut doc), so this is a
// design cost to decide, not a leak: a "did not opt out" that follows an
// objection of the same source (notice given) is the customer's choice,
// and could at least lift an objection that source recorded.
func TestReview4SignalsOptOutReversedIsNeverRecorded(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	notices := map[string]int{"sale_opt_out_notice": 1, "mspa_covered_transaction": 2}
	out := usnat(map[string]int{"sale_opt_out": 1})
	out.Notices = notices
	back := usnat(map[string]int{"sale_opt_out": 2})
	back.Notices = notices
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

	optOut := ChangesFrom(pol, Submission{SubjectID: "customer-back", CapturedAt: t0, Jurisdiction: "US-CA",
		Signals: []Signal{{Type: TypeGPP, Value: "opted-out"}}}, &Decoded{GPP: []gpp.Section{out}})
	if len(optOut) != 1 || optOut[0].Purpose != "sale" || optOut[0].Action != consent.ActionWithdraw {
		t.Fatalf("setup: sale_opt_out=1: %+v, want one WITHDRAW of sale", optOut)
	}
	reversed := ChangesFrom(pol, Submission{SubjectID: "customer-back", CapturedAt: t0.Add(7 * 24 * time.Hour), Jurisdiction: "US-CA",
		Signals: []Signal{{Type: TypeGPP, Value: "opted-back-in"}}}, &Decoded{GPP: []gpp.Section{back}})
	for _, c := range reversed {
		if c.Purpose == "sale" && c.Action == consent.ActionGrant {
			return
		}
	}
	t.Errorf("sale_opt_out=2 (notice given) a week after sale_opt_out=1 makes %d changes and none lifts the WITHDRAW of sale: the customer's reversal is lost and sale stays refused for good", len(reversed))
}
