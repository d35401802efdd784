package enforce

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
)

// TestReview3ConsentHeadersAgreeWithDecision (passes; pins what the review
// checked): for random consent states (grants on every legal basis,
// denials, withdrawals, expired grants, erasures before and after the
// purpose changes, unknown subjects) on every stream of contextPolicy, the
// consent context of a non-dropped decision is always made (never an
// error), Consent Mode is granted exactly when the record passed and every
// purpose holds an unexpired, unerased GRANT under CONSENT, a redacted
// record never lists a purpose its stream did not allow, and the change
// ids listed are those of the decision's consents (the audit record's),
// in the stream's order, written as appendChangeID writes them.
func TestReview3ConsentHeadersAgreeWithDecision(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse([]byte(contextPolicy), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 14))
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	bases := []consent.LegalBasis{consent.BasisConsent, consent.BasisLegitimateInterest, consent.BasisContract}
	statuses := []consent.Status{consent.StatusGranted, consent.StatusGranted, consent.StatusDenied, consent.StatusWithdrawn}
	var granted, denied, missing, listed int
	for trial := range 3000 {
		subject := fmt.Sprintf("s%d", trial)
		var st *consent.State
		if rng.IntN(8) > 0 {
			st = &consent.State{SubjectID: subject, Purposes: map[string]consent.PurposeState{}}
			for _, p := range []string{"marketing", "analytics", "sale"} {
				if rng.IntN(4) == 0 {
					continue
				}
				ps := consent.PurposeState{Status: statuses[rng.IntN(len(statuses))], ChangeID: fmt.Sprintf("c-%s-%d", p, rng.IntN(3)),
					CapturedAt: now.Add(-time.Duration(rng.IntN(100)) * time.Hour)}
				if rng.IntN(10) == 0 {
					ps.ChangeID = "x-" + subject // holds the subject id
				}
				if ps.Status == consent.StatusGranted {
					ps.LegalBasis = bases[rng.IntN(len(bases))]
					if rng.IntN(4) == 0 {
						ps.ExpiresAt = now.Add(time.Duration(rng.IntN(3)-1) * time.Hour)
					}
				}
				st.Purposes[p] = ps
			}
			if rng.IntN(6) == 0 {
				st.ErasedAt, st.ErasedBy = now.Add(-50*time.Hour), "erase-1"
			}
		}
		for _, s := range pol.Streams {
			d := decision.Decide(pol, s, decision.Input{Schema: "consentgate.events.EmailEngagement", State: st, Now: now})
			if d.Outcome == decision.Dropped {
				continue
			}
			h, err := ConsentHeaders(pol, s, d, st, subject, now)
			if err != nil {
				t.Fatalf("trial %d %s: %v", trial, s.Topic, err)
			}
			got := map[string]string{}
			for _, x := range h {
				got[x.Key] = string(x.Value)
				if strings.Contains(string(x.Value), subject) {
					t.Fatalf("trial %d %s: header %s holds the subject id", trial, s.Topic, x.Key)
				}
			}
			// Consent Mode: granted iff passed and every purpose is an
			// effective CONSENT grant.
			allConsent := d.Outcome == decision.Passed
			for _, p := range s.Purposes {
				v := st.Check(p, now)
				allConsent = allConsent && v.Allowed && v.LegalBasis == consent.BasisConsent
			}
			if s.GoogleConsentMode {
				want := ConsentModeDenied
				if allConsent {
					want = ConsentModeGranted
				}
				if allConsent {
					granted++
				} else {
					denied++
				}
				if got[HeaderAdUserData] != want || got[HeaderAdPersonalization] != want {
					t.Fatalf("trial %d %s (%s %s): consent mode %q/%q, want %q", trial, s.Topic, d.Outcome, d.Reason, got[HeaderAdUserData], got[HeaderAdPersonalization], want)
				}
			}
			if missingConsent(&d) {
				if got[HeaderConsentPurposes] != "" || got[HeaderConsentChangeIDs] != "" || got[HeaderConsentLegalBasis] != "" {
					t.Fatalf("trial %d %s: a record redacted without consent lists %v", trial, s.Topic, got)
				}
				missing++
				continue
			}
			// The ids listed are the audit record's consents, in order.
			var ids []string
			for _, c := range d.Consents {
				if c.ChangeID != "" {
					ids = append(ids, c.Purpose+"="+string(appendChangeID(nil, c.ChangeID, subject)))
				}
			}
			listed++
			if w := strings.Join(ids, ","); got[HeaderConsentChangeIDs] != w {
				t.Fatalf("trial %d %s: change ids %q, the audit record's %q", trial, s.Topic, got[HeaderConsentChangeIDs], w)
			}
		}
	}
	if granted == 0 || denied == 0 || missing == 0 || listed == 0 {
		t.Errorf("not a useful sample: consent mode granted %d, denied %d; redacted without consent %d; ids listed %d", granted, denied, missing, listed)
	}
	t.Logf("consent mode granted %d, denied %d; redacted without consent %d; ids listed %d", granted, denied, missing, listed)
}
