package signals

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// randomDecoded draws signals of every source, each present or not.
func randomDecoded(r *rand.Rand) *Decoded {
	d := &Decoded{}
	ids := func(max int) []int {
		var out []int
		for i := 1; i <= max; i++ {
			if r.IntN(3) > 0 {
				out = append(out, i)
			}
		}
		return out
	}
	for range r.IntN(3) {
		d.TCF = append(d.TCF, tc(ids(11), ids(11), ids(2)))
	}
	if r.IntN(2) == 0 {
		f := map[string]int{}
		for _, name := range gpp.FieldNames("usnat") {
			if name != "gpc" && r.IntN(4) > 0 {
				f[name] = r.IntN(3)
			}
		}
		d.GPP = append(d.GPP, usnat(f))
	}
	d.GPC = r.IntN(3) == 0
	if r.IntN(2) == 0 {
		d.ConsentMode = map[string]string{}
		for _, s := range policy.ConsentModeStates {
			switch r.IntN(3) {
			case 0:
				d.ConsentMode[s] = Granted
			case 1:
				d.ConsentMode[s] = Denied
			}
		}
	}
	return d
}

var jurisdictions = []string{"", "DE", "GB", "US", "US-CA", "CH"}

// applying returns the readings of the purpose rules for pu that apply in
// jurisdiction j, by source; "inJ" is false for a rule that only applies
// because j is unknown.
type applied struct {
	rule policy.SignalRule
	v    Value
	inJ  bool
}

func applyingRules(pol *policy.Policy, d *Decoded, pu policy.Purpose, j string) []applied {
	var out []applied
	for _, r := range pol.Signals.Rules {
		if r.IsCategoryRule() || !slices.Contains(r.Purposes, pu.ID) {
			continue
		}
		f, _ := policy.LookupSignalField(r.Signal)
		if !d.Present(f.Source) {
			continue
		}
		v := read(d, f, r.Basis, pol.Signals.TCFVendorID).Value
		if f.Flag && v == Absent {
			continue
		}
		if v == Allow && f.Kind == policy.SignalOptOut && !pu.OptOut {
			v = Absent
		}
		inJ := r.AppliesIn(j)
		if inJ || (j == "" && v == Refuse) {
			out = append(out, applied{r, v, inJ})
		}
	}
	return out
}

func TestEvaluateProperties(t *testing.T) {
	t.Parallel()
	pols := map[string]*policy.Policy{
		"most_restrictive": mustPolicy(t, testPolicy),
		"ordered":          mustPolicy(t, strings.Replace(testPolicy, "signals:\n", "signals:\n  precedence: ordered\n  order: [consent_mode, tcf]\n", 1)),
	}
	r := rand.New(rand.NewPCG(14, 2026))
	for name, pol := range pols {
		for i := range 3000 {
			d := randomDecoded(r)
			j := jurisdictions[r.IntN(len(jurisdictions))]
			outs := Evaluate(pol, d, j)
			byPurpose := map[string]Outcome{}
			for _, o := range outs {
				if _, dup := byPurpose[o.Purpose]; dup {
					t.Fatalf("%s #%d: two outcomes for %s", name, i, o.Purpose)
				}
				byPurpose[o.Purpose] = o
			}
			for _, pu := range pol.Purposes {
				o, has := byPurpose[pu.ID]
				rules := applyingRules(pol, d, pu, j)
				anyRefuse := slices.ContainsFunc(rules, func(a applied) bool { return a.v == Refuse })
				// Something decided only if some applying rule said something.
				if has && !slices.ContainsFunc(rules, func(a applied) bool { return a.v != Absent }) {
					t.Fatalf("%s #%d %s: outcome %+v with no rule saying anything", name, i, pu.ID, o)
				}
				if !has || o.Action != consent.ActionGrant {
					if has && anyRefuse == false {
						t.Fatalf("%s #%d %s: %s without any refusing rule", name, i, pu.ID, o.Action)
					}
					continue
				}
				// A GRANT: every applying rule of each deciding source allows,
				// and each rests on a jurisdiction that covers j.
				for _, a := range rules {
					f, _ := policy.LookupSignalField(a.rule.Signal)
					if !slices.Contains(o.Sources, f.Source) {
						continue
					}
					if a.v != Allow || !a.inJ {
						t.Fatalf("%s #%d %s: GRANT from %s although %s says %s (in jurisdiction: %v)", name, i, pu.ID, f.Source, a.rule.Signal, a.v, a.inJ)
					}
				}
				if pol.Signals.Precedence == policy.PrecedenceMostRestrictive && anyRefuse {
					t.Fatalf("most restrictive #%d %s: GRANT despite a refusing rule", i, pu.ID)
				}
				if !pu.Allows(o.LegalBasis) {
					t.Fatalf("%s #%d %s: GRANT under %s, which the purpose does not accept", name, i, pu.ID, o.LegalBasis)
				}
			}
			// Monotonic: adding GPC never turns a refusal into a grant
			// under most_restrictive.
			if name == "most_restrictive" && !d.GPC {
				d2 := *d
				d2.GPC = true
				after := map[string]Outcome{}
				for _, o := range Evaluate(pol, &d2, j) {
					after[o.Purpose] = o
				}
				for p, o := range byPurpose {
					if o.Action != consent.ActionGrant && after[p].Action == consent.ActionGrant {
						t.Fatalf("#%d %s: adding GPC turned %s into GRANT", i, p, o.Action)
					}
				}
				if after["sale"].Action != consent.ActionWithdraw {
					t.Fatalf("#%d: GPC did not withdraw sale: %+v", i, after["sale"])
				}
			}
			// Every change is a valid consent change.
			sub := Submission{SubjectID: "s", CapturedAt: time.UnixMilli(1_700_000_000_000), Jurisdiction: j, Signals: []Signal{{Type: TypeGPC, Value: "1"}}}
			for _, c := range ChangesFrom(pol, sub, d) {
				if err := c.Validate(); err != nil {
					t.Fatalf("%s #%d: invalid change %+v: %v", name, i, c, err)
				}
			}
		}
	}
}

// TestTCFStringsEndToEnd decodes real TC strings through Decode and
// Evaluate, so that the engine reads the decoder's output as it is.
func TestTCFStringsEndToEnd(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	for _, s := range []string{
		// iabgpp-es test strings, TCF policy version 5: consents {1,3-6} LI {2}, and everything.
		"CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA",
		"CQd924AQd924AASACCENCNFsAP_gAEIAACiQL6QBAAGAAOANmAcAF9IAIADgAA.IL6AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.YIAAAAAAAAAA",
	} {
		d, err := Decode(Submission{Signals: []Signal{{Type: TypeTCF, Value: s}}})
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		t0 := d.TCF[0]
		for _, o := range Evaluate(pol, d, "DE") {
			want := consent.ActionGrant
			switch o.Purpose {
			case "marketing":
				if !t0.PurposesConsent.Has(1) || !t0.PurposesConsent.Has(3) {
					want = consent.ActionDeny
				}
			case "personalisation":
				if !t0.PurposesConsent.Has(1) || !t0.PurposesConsent.Has(5) {
					want = consent.ActionDeny
				}
			case "analytics":
				if !t0.PurposesConsent.Has(8) && !t0.PurposesLITransparency.Has(8) {
					want = consent.ActionDeny
				}
			}
			if o.Action != want {
				t.Errorf("%s: %s, want %s (consents %v, LI %v)", o.Purpose, o.Action, want, t0.PurposesConsent, t0.PurposesLITransparency)
			}
		}
	}
}

// TestDecodeRefusesVoidTCStrings: TC strings the TCF policy voids decode
// but are refused, never read as consent.
func TestDecodeRefusesVoidTCStrings(t *testing.T) {
	t.Parallel()
	dated := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	// The TCF v2.0 example of the specification (policy version 2).
	_, err := Decode(Submission{Signals: []Signal{{Type: TypeTCF, Value: "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw"}}})
	if err == nil || !strings.Contains(err.Error(), "TCF policy version 2") {
		t.Errorf("v2.0 string: %v", err)
	}
	for _, tt := range []struct {
		t    tcf.TCString
		want string
	}{
		{tcf.TCString{PolicyVersion: 3, IsServiceSpecific: true}, "policy version 3"},
		{tcf.TCString{PolicyVersion: 4, Created: dated, LastUpdated: dated}, "global-scope"},
		{tcf.TCString{PolicyVersion: 5, Created: dated, LastUpdated: dated}, "global-scope"},
		{tcf.TCString{PolicyVersion: 5, IsServiceSpecific: true, Created: time.Unix(0, 0), LastUpdated: dated}, "before 2019"},
		{tcf.TCString{PolicyVersion: 5, IsServiceSpecific: true, Created: dated}, "before 2019"},
	} {
		if err := checkTCF(&tt.t); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("checkTCF(%+v) = %v, want %q", tt.t, err, tt.want)
		}
	}
	if err := checkTCF(&tcf.TCString{PolicyVersion: 4, IsServiceSpecific: true, Created: dated, LastUpdated: dated}); err != nil {
		t.Errorf("a v2.2 service-specific string refused: %v", err)
	}
}
