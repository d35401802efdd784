package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sigBase is a policy with purposes of every kind that signals tests
// extend with a signals section (it starts at line 11).
const sigBase = `purposes:
  - id: marketing
  - id: analytics
    legal_bases: [CONSENT, LEGITIMATE_INTEREST]
  - id: sale
    opt_out: true
  - id: fraud
    legal_bases: [LEGITIMATE_INTEREST]
streams:
  - purposes: [marketing]
`

func TestSignalsParse(t *testing.T) {
	t.Parallel()
	in := sigBase + `signals:
  precedence: ordered
  order: [gpc, tcf]
  tcf:
    vendor_id: 755
  rules:
    - signal: tcf.purpose.1
      jurisdictions: [EEA, GB]
      purposes: [marketing]
    - signal: tcf.purpose.8
      basis: either
      purposes: [analytics]
    - signal: tcf.special_feature.1
      categories: [user.location.precise]
      purposes: [marketing]
    - signal: gpp.usnat.sale_opt_out
      purposes: [sale]
    - signal: gpc
      purposes: [sale, marketing]
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
`
	pol, err := Parse([]byte(in), src)
	if err != nil {
		t.Fatal(err)
	}
	s := pol.Signals
	if s.Precedence != PrecedenceOrdered || !reflect.DeepEqual(s.Order, []string{"gpc", "tcf"}) || s.TCFVendorID != 755 || s.Line != 11 {
		t.Fatalf("signals header = %+v", s)
	}
	want := []SignalRule{
		{Signal: "tcf.purpose.1", Basis: BasisConsent, Jurisdictions: []string{"EEA", "GB"}, Purposes: []string{"marketing"}, Line: 17},
		{Signal: "tcf.purpose.8", Basis: BasisEither, Purposes: []string{"analytics"}, Line: 20},
		{Signal: "tcf.special_feature.1", Categories: []string{"user.location.precise"}, Purposes: []string{"marketing"}, Line: 23},
		{Signal: "gpp.usnat.sale_opt_out", Purposes: []string{"sale"}, Line: 26},
		{Signal: "gpc", Purposes: []string{"sale", "marketing"}, Line: 28},
		{Signal: "consent_mode.ad_user_data", Purposes: []string{"marketing"}, Line: 30},
	}
	if !reflect.DeepEqual(s.Rules, want) {
		t.Fatalf("rules:\ngot  %+v\nwant %+v", s.Rules, want)
	}
	if !s.Rules[2].IsCategoryRule() || s.Rules[0].IsCategoryRule() {
		t.Error("IsCategoryRule wrong")
	}
	// Unmapped lists the unmapped fields of the mapped sources only.
	un := s.Unmapped()
	for _, f := range []string{"tcf.purpose.2", "tcf.special_feature.2", "gpp.usnat.sharing_opt_out", "consent_mode.ad_storage"} {
		if !slices.Contains(un, f) {
			t.Errorf("Unmapped lacks %s", f)
		}
	}
	for _, f := range []string{"tcf.purpose.1", "gpc", "gpp.usca.sale_opt_out", "gpp.usnat.sale_opt_out"} {
		if slices.Contains(un, f) {
			t.Errorf("Unmapped has %s", f)
		}
	}
	srcs := s.UnmappedSources()
	if !slices.Contains(srcs, "gpp.usca") || slices.Contains(srcs, "tcf") || slices.Contains(srcs, "gpc") {
		t.Errorf("UnmappedSources = %v", srcs)
	}
}

func TestSignalsDefaults(t *testing.T) {
	t.Parallel()
	pol, err := Parse([]byte(sigBase+"signals:\n  rules:\n    - signal: tcf.publisher.custom_purpose.3\n      purposes: [marketing]\n"), src)
	if err != nil {
		t.Fatal(err)
	}
	if pol.Signals.Precedence != PrecedenceMostRestrictive || pol.Signals.Rules[0].Basis != BasisConsent {
		t.Fatalf("defaults: %+v", pol.Signals)
	}
	pol, err = Parse([]byte(sigBase), src)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pol.Signals, Signals{}) {
		t.Fatalf("no section gives %+v, want the zero value", pol.Signals)
	}
}

func TestSignalsParseBad(t *testing.T) {
	t.Parallel()
	rule := func(body string) string { return sigBase + "signals:\n  rules:\n" + body }
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty section", sigBase + "signals:\n", []string{"11:1: signals is empty"}},
		{"no rules", sigBase + "signals:\n  precedence: most_restrictive\n", []string{"12:3: signals has no rules"}},
		{"empty rules", sigBase + "signals:\n  rules: []\n", []string{"12:3: signals has no rules"}},
		{"unknown key", sigBase + "signals:\n  rule: []\n", []string{`12:3: unknown key "rule" in signals; did you mean rules?`, "12:3: signals has no rules"}},
		{"bad precedence", sigBase + "signals:\n  precedence: strictest\n  rules:\n    - signal: gpc\n      purposes: [sale]\n",
			[]string{`12:15: bad precedence "strictest": allowed values are most_restrictive, ordered`}},
		{"ordered without order", sigBase + "signals:\n  precedence: ordered\n  rules:\n    - signal: gpc\n      purposes: [sale]\n",
			[]string{"12:15: precedence: ordered needs order"}},
		{"order without ordered", sigBase + "signals:\n  order: [gpc]\n  rules:\n    - signal: gpc\n      purposes: [sale]\n",
			[]string{"12:3: order is only for precedence: ordered"}},
		{"unknown source in order", sigBase + "signals:\n  precedence: ordered\n  order: [gpcc, gpp.usxx]\n  rules:\n    - signal: gpc\n      purposes: [sale]\n",
			[]string{`13:11: unknown signal source "gpcc" in order; did you mean gpc?`, `13:17: unknown signal source "gpp.usxx" in order`}},
		{"bad vendor id", sigBase + "signals:\n  tcf:\n    vendor_id: 70000\n  rules:\n    - signal: gpc\n      purposes: [sale]\n",
			[]string{`13:16: bad vendor_id "70000"`}},
		{"vendor id text", sigBase + "signals:\n  tcf:\n    vendor_id: \"12\"\n  rules:\n    - signal: gpc\n      purposes: [sale]\n",
			[]string{`13:16: bad vendor_id "12"`}},
		{"unknown field typo", rule("    - signal: tcf.purpos.1\n      purposes: [marketing]\n"),
			[]string{`13:15: unknown signal field "tcf.purpos.1"; did you mean tcf.purpose.1?`}},
		{"tcf purpose out of range", rule("    - signal: tcf.purpose.12\n      purposes: [marketing]\n"),
			[]string{`13:15: unknown signal field "tcf.purpose.12"; did you mean tcf.purpose.1?`}},
		{"special feature 3", rule("    - signal: tcf.special_feature.30\n      purposes: [marketing]\n"),
			[]string{`13:15: unknown signal field "tcf.special_feature.30"; did you mean tcf.special_feature.`}},
		{"gpp unknown field", rule("    - signal: gpp.usca.targeted_advertising_opt_out\n      purposes: [sale]\n"),
			[]string{`13:15: unknown signal field "gpp.usca.targeted_advertising_opt_out"; the fields of gpp.usca are sale_opt_out`}},
		{"gpp unknown section", rule("    - signal: gpp.usxy.sale_opt_out\n      purposes: [sale]\n"),
			[]string{`13:15: unknown signal field "gpp.usxy.sale_opt_out"; did you mean gpp.usky.sale_opt_out?`}},
		{"no signal", rule("    - purposes: [sale]\n"), []string{"13:7: signal rule has no signal"}},
		{"neither purposes nor categories", rule("    - signal: gpc\n"), []string{"13:7: signal rule has neither purposes nor categories"}},
		{"unknown purpose", rule("    - signal: gpc\n      purposes: [sales]\n"), []string{`14:18: signal rule names unknown purpose "sales"`}},
		{"empty purposes", rule("    - signal: gpc\n      purposes: []\n"), []string{"14:17: purposes is empty"}},
		{"bad category", rule("    - signal: tcf.special_feature.1\n      categories: [health]\n"),
			[]string{`14:20: signal rule category "health" is not a full category path`}},
		{"star category", rule("    - signal: tcf.special_feature.1\n      categories: [\"*\"]\n"),
			[]string{`14:20: signal rule category "*" is "*"`}},
		{"basis on a non-purpose field", rule("    - signal: gpc\n      basis: consent\n      purposes: [sale]\n"),
			[]string{"14:7: basis is only for TCF purpose fields"}},
		{"li basis on purpose 1", rule("    - signal: tcf.purpose.1\n      basis: legitimate_interest\n      purposes: [analytics]\n"),
			[]string{"14:14: basis legitimate_interest: TCF purpose 1 cannot rest on legitimate interest"}},
		{"li basis on a consent-only purpose", rule("    - signal: tcf.purpose.7\n      basis: legitimate_interest\n      purposes: [marketing]\n"),
			[]string{"13:7: basis legitimate_interest, but purpose marketing does not accept LEGITIMATE_INTEREST"}},
		{"either basis needs both", rule("    - signal: tcf.purpose.7\n      basis: either\n      purposes: [fraud]\n"),
			[]string{"13:7: basis either, but purpose fraud does not accept both"}},
		{"consent basis on an LI-only purpose", rule("    - signal: tcf.purpose.7\n      purposes: [fraud]\n"),
			[]string{"13:7: signal tcf.purpose.7 grants under CONSENT, but purpose fraud does not accept CONSENT"}},
		{"basis on a category rule", rule("    - signal: tcf.purpose.7\n      basis: consent\n      categories: [user.health]\n"),
			[]string{"14:14: basis is only for rules that decide purposes"}},
		{"bad basis", rule("    - signal: tcf.purpose.7\n      basis: li\n      purposes: [analytics]\n"),
			[]string{`14:14: bad basis "li": allowed values are consent, legitimate_interest, either`}},
		{"bad jurisdiction", rule("    - signal: gpc\n      jurisdictions: [us-ca, EU, USA]\n      purposes: [sale]\n"),
			[]string{`14:23: bad jurisdiction "us-ca"`, `14:30: jurisdiction "EU" is not used: write EEA`, `14:34: bad jurisdiction "USA"`}},
		{"empty jurisdictions", rule("    - signal: gpc\n      jurisdictions: []\n      purposes: [sale]\n"),
			[]string{"14:22: jurisdictions is empty"}},
		{"duplicate mapping", rule("    - signal: gpc\n      purposes: [sale]\n    - signal: gpc\n      jurisdictions: [US]\n      purposes: [marketing, sale]\n"),
			[]string{`15:7: signal gpc already maps purpose "sale" (rule at line 13)`}},
		{"unknown rule key", rule("    - signal: gpc\n      purpose: [sale]\n"),
			[]string{"13:7: signal rule has neither purposes nor categories", `14:7: unknown key "purpose" in signal rule; did you mean purposes?`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.in), src)
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			var got []string
			for _, p := range Problems(err) {
				got = append(got, p.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], src+":"+w) {
					t.Errorf("problem %d:\ngot  %s\nwant %s:%s...", i, got[i], src, w)
				}
			}
		})
	}
}

func TestMatchJurisdiction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule, signal string
		want         bool
	}{
		{"US", "US", true},
		{"US", "US-CA", true},
		{"US-CA", "US-CA", true},
		{"US-CA", "US", false},
		{"US-CA", "US-CO", false},
		{"US", "USA", false},
		{"EEA", "DE", true},
		{"EEA", "NO", true},
		{"EEA", "DE-BY", true},
		{"EEA", "GB", false},
		{"EEA", "CH", false},
		{"DE", "", false},
		{"EEA", "", false},
		{"GB", "GB", true},
		{"EEA", "RE", true},
		{"EEA", "AX", true},
	}
	for _, tt := range tests {
		if got := MatchJurisdiction(tt.rule, tt.signal); got != tt.want {
			t.Errorf("MatchJurisdiction(%q, %q) = %v, want %v", tt.rule, tt.signal, got, tt.want)
		}
	}
	r := SignalRule{Jurisdictions: []string{"EEA", "GB"}}
	if !r.AppliesIn("FR") || r.AppliesIn("US") || r.AppliesIn("") {
		t.Error("AppliesIn with jurisdictions wrong")
	}
	if !(SignalRule{}).AppliesIn("") || !(SignalRule{}).AppliesIn("US") {
		t.Error("a rule without jurisdictions applies everywhere")
	}
}

func TestSignalCatalogue(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, f := range SignalFields() {
		if seen[f.Name] {
			t.Errorf("duplicate catalogue field %s", f.Name)
		}
		seen[f.Name] = true
		if !strings.HasPrefix(f.Name, f.Source) {
			t.Errorf("field %s is not under its source %s", f.Name, f.Source)
		}
		if f.Kind != SignalOptIn && f.Kind != SignalOptOut {
			t.Errorf("field %s has no kind", f.Name)
		}
		if got, ok := LookupSignalField(f.Name); !ok || got != f {
			t.Errorf("LookupSignalField(%s) = %+v, %v", f.Name, got, ok)
		}
	}
	for _, name := range []string{"tcf.purpose.1", "tcf.purpose.11", "tcf.special_feature.2", "tcf.publisher.purpose.11", "tcf.publisher.custom_purpose.63",
		"gpp.usnat.sale_opt_out", "gpp.usca.sharing_opt_out", "gpp.uspv1.sale_opt_out", "gpc", "consent_mode.ad_personalization"} {
		if !seen[name] {
			t.Errorf("catalogue lacks %s", name)
		}
	}
	for _, name := range []string{"tcf.purpose.0", "tcf.purpose.12", "tcf.special_feature.3", "tcf.publisher.custom_purpose.64", "gpp.tcfeuv2.x", "consent_mode.functionality_storage"} {
		if seen[name] {
			t.Errorf("catalogue has %s", name)
		}
	}
	if k := mustField(t, "gpc").Kind; k != SignalOptOut {
		t.Errorf("gpc kind %v", k)
	}
	if k := mustField(t, "gpp.usnat.sale_opt_out").Kind; k != SignalOptOut {
		t.Errorf("usnat sale_opt_out kind %v", k)
	}
	if f := mustField(t, "tcf.purpose.7"); f.Kind != SignalOptIn || !f.TakesBasis() || f.TCFPurpose != 7 {
		t.Errorf("tcf.purpose.7 = %+v", f)
	}
	if f := mustField(t, "tcf.special_feature.1"); f.TakesBasis() {
		t.Errorf("special feature takes a basis")
	}
}

func mustField(t *testing.T, name string) SignalField {
	t.Helper()
	f, ok := LookupSignalField(name)
	if !ok {
		t.Fatalf("no catalogue field %s", name)
	}
	return f
}

func TestCheckJurisdictionAndCoverage(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"DE", "GB", "US", "US-CA", "FR-75", "RE", "AX"} {
		if err := CheckJurisdiction(ok); err != nil {
			t.Errorf("CheckJurisdiction(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string]string{"UK": "GB", "EU": "region", "EEA": "region", "XX": "not an assigned", "de": "not an assigned", "US-": "subdivision", "US-CALI": "subdivision", "": "not an assigned"} {
		if err := CheckJurisdiction(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckJurisdiction(%q) = %v, want %q", bad, err, want)
		}
	}
	r := SignalRule{Jurisdictions: []string{"US-CA", "EEA"}}
	for j, want := range map[string]Cover{"US-CA": CoverFull, "US": CoverPartial, "": CoverPartial, "US-CO": CoverNone, "DE": CoverFull, "GB": CoverNone} {
		if got := r.Coverage(j); got != want {
			t.Errorf("Coverage(%q) = %v, want %v", j, got, want)
		}
	}
	if (SignalRule{}).Coverage("") != CoverFull {
		t.Error("a rule without jurisdictions covers everything")
	}
}
