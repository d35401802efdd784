package explain

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview3ExplainClockRulePerChange: consent-sync applies the clock rule
// per change (signals.BoundChanges, used by the intake and the
// consent.signals consumer): a submission dated an hour ahead that grants
// marketing (Consent Mode) and withdraws sale (USP 1YYN) is answered 202,
// the WITHDRAW of sale recorded (moved back to now + skew) and only the
// marketing grant refused. explain still applies the old all-or-nothing
// rule: the refused grant makes EvaluateSignals fail and `enforcer explain`
// exit 1 saying "consent-sync refuses it", so it shows neither the
// withdrawal consent-sync stores nor the decisions made on it (the
// operator is told the submission changes nothing while sale is in fact
// withdrawn). explain must show what consent-sync does with the same
// signals under the same clock rule.
func TestReview3ExplainClockRulePerChange(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse(repoFile(t, "pkg/policy/testdata/example.yaml"), "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := goldenNow
	sub := signals.Submission{SubjectID: "c-1001", CapturedAt: now.Add(time.Hour), Signals: []signals.Signal{
		{Type: signals.TypeUSP, Value: "1YYN"},
		{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "granted", "ad_personalization": "granted"}}}}
	changes, err := signals.Changes(pol, sub)
	if err != nil {
		t.Fatal(err)
	}
	kept, refused := signals.BoundChanges(changes, now, consent.DefaultMaxClockSkew)
	if len(kept) != 1 || kept[0].Purpose != "sale" || kept[0].Action != consent.ActionWithdraw || len(refused) != 1 || refused[0].Purpose != "marketing" {
		t.Fatalf("reference: kept %+v refused %+v", kept, refused)
	}

	rep, st, err := EvaluateSignals(pol, sub, nil, now)
	if err != nil {
		t.Fatalf("explain refuses the submission (%v); consent-sync records the sale WITHDRAW %s and refuses only the marketing grant", err, kept[0].ChangeID)
	}
	for _, p := range rep.Purposes {
		if p.Purpose == "sale" && (!p.Applied || p.ChangeID != kept[0].ChangeID || p.CapturedAt == nil || !p.CapturedAt.Equal(kept[0].CapturedAt)) {
			t.Errorf("sale: %+v, consent-sync stores %+v", p, kept[0])
		}
		if p.Purpose == "marketing" && p.Applied {
			t.Errorf("marketing applied, consent-sync refuses its grant")
		}
	}
	if v := st.Check("sale", now); v.Allowed || v.ChangeID != kept[0].ChangeID {
		t.Errorf("sale verdict %+v, want withdrawn by %s", v, kept[0].ChangeID)
	}

	code, _, errs := runExplain(t, "--policy", examplePolicy, "--event", filepath.Join("testdata", "events", "purchase.json"),
		"--now", "2026-06-01T12:00:00Z", "--usp", "1YYN", "--consent-mode", "ad_user_data=granted,ad_personalization=granted",
		"--captured-at", "2026-06-01T13:00:00Z")
	if code != ExitOK {
		t.Errorf("enforcer explain exit %d: %s", code, errs)
	}
}
