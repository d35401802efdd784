package signals

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

const testPolicy = `purposes:
  - id: marketing
  - id: analytics
    legal_bases: [CONSENT, LEGITIMATE_INTEREST]
  - id: personalisation
  - id: sale
    opt_out: true
streams:
  - purposes: [marketing]
signals:
  rules:
    - signal: tcf.purpose.1
      jurisdictions: [EEA, GB]
      purposes: [marketing, personalisation]
    - signal: tcf.purpose.3
      jurisdictions: [EEA, GB]
      purposes: [marketing]
    - signal: tcf.purpose.5
      jurisdictions: [EEA, GB]
      purposes: [personalisation]
    - signal: tcf.purpose.8
      basis: either
      jurisdictions: [EEA, GB]
      purposes: [analytics]
    - signal: tcf.special_feature.1
      jurisdictions: [EEA, GB]
      categories: [user.location.precise]
    - signal: gpp.usnat.sale_opt_out
      purposes: [sale]
    - signal: gpp.usnat.targeted_advertising_opt_out
      purposes: [marketing]
    - signal: gpp.usnat.sensitive_data_processing.3
      jurisdictions: [US]
      categories: [user.health]
    - signal: gpc
      purposes: [sale]
    - signal: gpp.usnat.gpc
      purposes: [sale]
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
    - signal: consent_mode.analytics_storage
      purposes: [analytics]
`

func mustPolicy(t testing.TB, yaml string) *policy.Policy {
	t.Helper()
	pol, err := policy.Parse([]byte(yaml), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// tc returns a TC string with the given purpose consents, LI bits and
// special features.
func tc(consents, lis, features []int) *tcf.TCString {
	return &tcf.TCString{Version: 2, CmpID: 10, CmpVersion: 2, PolicyVersion: 4,
		PurposesConsent: tcf.NewSet(consents...), PurposesLITransparency: tcf.NewSet(lis...), SpecialFeatureOptIns: tcf.NewSet(features...)}
}

func usnat(fields map[string]int) gpp.Section {
	return gpp.Section{ID: 7, Name: "usnat", Version: 2, Fields: fields}
}

// brief renders outcomes as "purpose:ACTION[basis][-excluded](sources)".
func brief(os []Outcome) []string {
	var out []string
	for _, o := range os {
		s := o.Purpose + ":" + string(o.Action)
		if o.Action == consent.ActionGrant {
			s += "/" + o.LegalBasis
		}
		if len(o.Excluded) > 0 {
			s += "-" + strings.Join(o.Excluded, ",")
		}
		s += "(" + strings.Join(o.Sources, "+") + ")"
		out = append(out, s)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	tests := []struct {
		name string
		d    *Decoded
		j    string
		want []string
	}{
		{"tcf all granted in DE", &Decoded{TCF: []*tcf.TCString{tc(all, nil, []int{1})}}, "DE",
			[]string{"marketing:GRANT/CONSENT(tcf)", "analytics:GRANT/CONSENT(tcf)", "personalisation:GRANT/CONSENT(tcf)"}},
		{"tcf without special feature excludes precise location", &Decoded{TCF: []*tcf.TCString{tc(all, nil, nil)}}, "FR",
			[]string{"marketing:GRANT/CONSENT-user.location.precise(tcf)", "analytics:GRANT/CONSENT-user.location.precise(tcf)", "personalisation:GRANT/CONSENT-user.location.precise(tcf)"}},
		{"one refused purpose denies, others grant", &Decoded{TCF: []*tcf.TCString{tc([]int{1, 5, 8}, nil, []int{1})}}, "GB",
			[]string{"marketing:DENY(tcf)", "analytics:GRANT/CONSENT(tcf)", "personalisation:GRANT/CONSENT(tcf)"}},
		{"legitimate interest only", &Decoded{TCF: []*tcf.TCString{tc([]int{1}, []int{8}, []int{1})}}, "DE",
			[]string{"marketing:DENY(tcf)", "analytics:GRANT/LEGITIMATE_INTEREST(tcf)", "personalisation:DENY(tcf)"}},
		{"nothing consented", &Decoded{TCF: []*tcf.TCString{tc(nil, nil, nil)}}, "DE",
			[]string{"marketing:DENY(tcf)", "analytics:DENY(tcf)", "personalisation:DENY(tcf)"}},
		{"tcf outside its jurisdictions says nothing", &Decoded{TCF: []*tcf.TCString{tc(nil, nil, nil)}}, "US-CA", nil},
		{"tcf grants outside its jurisdictions are no grants", &Decoded{TCF: []*tcf.TCString{tc(all, all, []int{1})}}, "US", nil},
		{"unknown jurisdiction: refusals apply, grants do not", &Decoded{TCF: []*tcf.TCString{tc([]int{1, 5}, nil, nil)}}, "",
			[]string{"marketing:DENY(tcf)", "analytics:DENY(tcf)"}},
		{"gpc withdraws sale", &Decoded{GPC: true}, "US-CA", []string{"sale:WITHDRAW(gpc)"}},
		{"gpc in an unknown jurisdiction still withdraws", &Decoded{GPC: true}, "", []string{"sale:WITHDRAW(gpc)"}},
		{"usnat did not opt out grants nothing (no objection is no consent)", &Decoded{GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 2, "targeted_advertising_opt_out": 2})}}, "US", nil},
		{"usnat GPC subsection set withdraws", &Decoded{GPP: []gpp.Section{{ID: 7, Name: "usnat", Version: 1, Fields: map[string]int{"sale_opt_out": 2}, GPC: ptr(true)}}}, "US",
			[]string{"sale:WITHDRAW(gpp.usnat)"}},
		{"usnat GPC subsection unset takes nothing away", &Decoded{GPP: []gpp.Section{{ID: 7, Name: "usnat", Version: 1, Fields: map[string]int{"sale_opt_out": 1}, GPC: ptr(false)}}}, "US",
			[]string{"sale:WITHDRAW(gpp.usnat)"}},
		{"usnat opt-outs withdraw", &Decoded{GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 1, "targeted_advertising_opt_out": 1})}}, "US",
			[]string{"marketing:WITHDRAW(gpp.usnat)", "sale:WITHDRAW(gpp.usnat)"}},
		{"usnat not applicable says nothing", &Decoded{GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 0})}}, "US", nil},
		{"a grant without sensitive consent excludes health in the US", &Decoded{GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 2})}, ConsentMode: map[string]string{"ad_user_data": Granted}}, "US-CO",
			[]string{"marketing:GRANT/CONSENT-user.health(consent_mode)"}},
		{"usnat sensitive consent keeps health", &Decoded{GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 2, "sensitive_data_processing.3": 2})}, ConsentMode: map[string]string{"ad_user_data": Granted}}, "US",
			[]string{"marketing:GRANT/CONSENT(consent_mode)"}},
		{"most restrictive: gpc beats usnat", &Decoded{GPC: true, GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 2})}}, "US",
			[]string{"sale:WITHDRAW(gpc)"}},
		{"most restrictive: consent mode denial beats tcf grant", &Decoded{TCF: []*tcf.TCString{tc(all, nil, []int{1})}, ConsentMode: map[string]string{"ad_user_data": Denied}}, "DE",
			[]string{"marketing:DENY(consent_mode)", "analytics:GRANT/CONSENT(tcf)", "personalisation:GRANT/CONSENT(tcf)"}},
		{"two sources granting", &Decoded{TCF: []*tcf.TCString{tc(all, nil, []int{1})}, ConsentMode: map[string]string{"ad_user_data": Granted, "analytics_storage": Granted}}, "DE",
			[]string{"marketing:GRANT/CONSENT(consent_mode+tcf)", "analytics:GRANT/CONSENT(consent_mode+tcf)", "personalisation:GRANT/CONSENT(tcf)"}},
		{"consent mode state not sent says nothing", &Decoded{ConsentMode: map[string]string{"ad_storage": Granted}}, "DE", nil},
		{"two TC strings: the refusal wins", &Decoded{TCF: []*tcf.TCString{tc(all, nil, []int{1}), tc([]int{1, 5, 8}, nil, []int{1})}}, "DE",
			[]string{"marketing:DENY(tcf)", "analytics:GRANT/CONSENT(tcf)", "personalisation:GRANT/CONSENT(tcf)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := brief(Evaluate(pol, tt.d, tt.j))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestEvaluateOrdered(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, strings.Replace(testPolicy, "signals:\n", "signals:\n  precedence: ordered\n  order: [tcf, gpc]\n", 1))
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	d := &Decoded{TCF: []*tcf.TCString{tc(all, nil, []int{1})}, ConsentMode: map[string]string{"ad_user_data": Denied}}
	// tcf is first in the order and decides marketing, over consent_mode.
	got := brief(Evaluate(pol, d, "DE"))
	want := []string{"marketing:GRANT/CONSENT(tcf)", "analytics:GRANT/CONSENT(tcf)", "personalisation:GRANT/CONSENT(tcf)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// tcf says nothing in the US: the unlisted consent_mode decides.
	got = brief(Evaluate(pol, d, "US"))
	if want := []string{"marketing:DENY(consent_mode)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("US: got %q, want %q", got, want)
	}
	// gpc is listed before the unlisted gpp.usnat.
	d = &Decoded{GPC: true, GPP: []gpp.Section{usnat(map[string]int{"sale_opt_out": 2})}}
	if got, want := brief(Evaluate(pol, d, "US")), []string{"sale:WITHDRAW(gpc)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("gpc first: got %q, want %q", got, want)
	}
}

func TestEvaluateVendor(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, strings.Replace(testPolicy, "signals:\n", "signals:\n  tcf:\n    vendor_id: 42\n", 1))
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	base := func() *tcf.TCString {
		t := tc(all, []int{8}, []int{1})
		t.VendorConsents = tcf.NewSet(42)
		t.VendorLegitimateInterests = tcf.NewSet(42)
		return t
	}
	ok := base()
	if got := brief(Evaluate(pol, &Decoded{TCF: []*tcf.TCString{ok}}, "DE")); len(got) != 3 || strings.Contains(strings.Join(got, " "), "DENY") {
		t.Fatalf("vendor with consent: %q", got)
	}
	noVendor := base()
	noVendor.VendorConsents = tcf.NewSet(7)
	noVendor.VendorLegitimateInterests = tcf.NewSet()
	if got, want := brief(Evaluate(pol, &Decoded{TCF: []*tcf.TCString{noVendor}}, "DE")),
		[]string{"marketing:DENY(tcf)", "analytics:DENY(tcf)", "personalisation:DENY(tcf)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("no vendor consent: got %q, want %q", got, want)
	}
	undisclosed := base()
	dv := tcf.NewSet(1, 2, 3)
	undisclosed.DisclosedVendors = &dv
	if got := brief(Evaluate(pol, &Decoded{TCF: []*tcf.TCString{undisclosed}}, "DE")); !slices.Contains(got, "marketing:DENY(tcf)") {
		t.Errorf("undisclosed vendor: %q", got)
	}
	notAllowed := base()
	notAllowed.PublisherRestrictions = []tcf.Restriction{{Purpose: 3, Type: tcf.NotAllowed, Vendors: tcf.NewSet(42)}}
	if got := brief(Evaluate(pol, &Decoded{TCF: []*tcf.TCString{notAllowed}}, "DE")); !slices.Contains(got, "marketing:DENY(tcf)") || !slices.Contains(got, "personalisation:GRANT/CONSENT(tcf)") {
		t.Errorf("restriction not allowed on purpose 3: %q", got)
	}
	requireLI := base()
	requireLI.PublisherRestrictions = []tcf.Restriction{{Purpose: 8, Type: tcf.RequireLegitimateInterest, Vendors: tcf.NewSet(42)}}
	// basis either: the consent bit no longer counts, the LI bit does.
	if got := brief(Evaluate(pol, &Decoded{TCF: []*tcf.TCString{requireLI}}, "DE")); !slices.Contains(got, "analytics:GRANT/LEGITIMATE_INTEREST(tcf)") {
		t.Errorf("restriction requiring LI: %q", got)
	}
	requireLI.VendorLegitimateInterests = tcf.NewSet()
	if got := brief(Evaluate(pol, &Decoded{TCF: []*tcf.TCString{requireLI}}, "DE")); !slices.Contains(got, "analytics:DENY(tcf)") {
		t.Errorf("restriction requiring LI without vendor LI: %q", got)
	}
}

func TestChangesIdempotentIDs(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sub := Submission{SubjectID: "subject-1", CapturedAt: at, Jurisdiction: "US-CA", Signals: []Signal{
		{Type: TypeGPC, Value: "1"},
		{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted, "analytics_storage": Denied}},
	}}
	a, err := Changes(pol, sub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Changes(pol, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("the same submission gave different changes:\n%+v\n%+v", a, b)
	}
	if len(a) != 3 {
		t.Fatalf("changes = %+v", a)
	}
	ids := map[string]bool{}
	for _, c := range a {
		if err := c.Validate(); err != nil {
			t.Errorf("change for %s invalid: %v", c.Purpose, err)
		}
		prefix := GrantPrefix
		if c.Action.Restrictive() {
			prefix = RestrictivePrefix
		}
		if !strings.HasPrefix(c.ChangeID, prefix) || len(c.ChangeID) != 37 || ids[c.ChangeID] {
			t.Errorf("change id %q", c.ChangeID)
		}
		ids[c.ChangeID] = true
		if !c.CapturedAt.Equal(at) || c.SubjectID != "subject-1" {
			t.Errorf("change %+v", c)
		}
	}
	byPurpose := map[string]consent.Change{}
	for _, c := range a {
		byPurpose[c.Purpose] = c
	}
	if c := byPurpose["sale"]; c.Action != consent.ActionWithdraw || c.Source != "signal:gpc" || c.NoticeVersion != "gpc" {
		t.Errorf("sale change %+v", c)
	}
	if c := byPurpose["marketing"]; c.Action != consent.ActionGrant || c.LegalBasis != consent.BasisConsent || c.Source != "signal:consent_mode" || c.NoticeVersion != "consent-mode-v2" {
		t.Errorf("marketing change %+v", c)
	}
	if c := byPurpose["analytics"]; c.Action != consent.ActionDeny {
		t.Errorf("analytics change %+v", c)
	}
	// Anything that identifies the submission changes every id.
	for name, mod := range map[string]func(*Submission){
		"captured_at":    func(s *Submission) { s.CapturedAt = s.CapturedAt.Add(time.Millisecond) },
		"subject":        func(s *Submission) { s.SubjectID = "subject-2" },
		"jurisdiction":   func(s *Submission) { s.Jurisdiction = "US-CO" },
		"notice_version": func(s *Submission) { s.NoticeVersion = "n2" },
		"state": func(s *Submission) {
			s.Signals[1].States = map[string]string{"ad_user_data": Granted, "analytics_storage": Granted}
		},
	} {
		s2 := sub
		s2.Signals = slices.Clone(sub.Signals)
		mod(&s2)
		c2, err := Changes(pol, s2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range c2 {
			if ids[c.ChangeID] {
				t.Errorf("%s changed but change id %s of %s stayed", name, c.ChangeID, c.Purpose)
			}
		}
	}
	// The caller's notice version comes first.
	sub.NoticeVersion = "privacy-2026-11"
	c3, _ := Changes(pol, sub)
	for _, c := range c3 {
		if !strings.HasPrefix(c.NoticeVersion, "privacy-2026-11;") {
			t.Errorf("notice version %q", c.NoticeVersion)
		}
	}
}

func TestNoticeVersionTCF(t *testing.T) {
	t.Parallel()
	d := &Decoded{TCF: []*tcf.TCString{tc(nil, nil, nil)}, GPP: []gpp.Section{usnat(nil)}}
	if got := NoticeVersion(Submission{}, d, []string{"tcf", "gpp.usnat"}); got != "gpp:usnat-v2;tcf:cmp-10:v2:policy-4" {
		t.Errorf("NoticeVersion = %q", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sub  Submission
		want string
	}{
		{"no signals", Submission{}, "signals: no signals"},
		{"too many", Submission{Signals: make([]Signal, MaxSignals+1)}, "at most 16"},
		{"unknown type", Submission{Signals: []Signal{{Type: "tcf2", Value: "x"}}}, "signals[0] (unknown type): unknown signal type"},
		{"bad tc string", Submission{Signals: []Signal{{Type: TypeGPC, Value: "1"}, {Type: TypeTCF, Value: "not a tc string!"}}}, "signals[1] (tcf): tcf:"},
		{"empty tc string", Submission{Signals: []Signal{{Type: TypeTCF}}}, "signals[0] (tcf): tcf:"},
		{"bad gpp string", Submission{Signals: []Signal{{Type: TypeGPP, Value: "DBAB"}}}, "signals[0] (gpp): gpp:"},
		{"bad usp", Submission{Signals: []Signal{{Type: TypeUSP, Value: "1XNN"}}}, "signals[0] (usp):"},
		{"bad gpc", Submission{Signals: []Signal{{Type: TypeGPC, Value: "yes"}}}, `signals[0] (gpc): a Sec-GPC value is "1"`},
		{"consent mode without states", Submission{Signals: []Signal{{Type: TypeConsentMode}}}, "no states"},
		{"consent mode unknown state", Submission{Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_storagee": Granted}}}}, "unknown Consent Mode state"},
		{"consent mode bad value", Submission{Signals: []Signal{{Type: TypeConsentMode, States: map[string]string{"ad_storage": "yes"}}}}, "neither granted nor denied"},
		{"consent mode with a value", Submission{Signals: []Signal{{Type: TypeConsentMode, Value: "G111", States: map[string]string{"ad_storage": Granted}}}}, "carries states"},
		{"states on tcf", Submission{Signals: []Signal{{Type: TypeTCF, Value: "x", States: map[string]string{}}}}, "states are only for consent_mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := Decode(tt.sub)
			if err == nil || d != nil {
				t.Fatalf("Decode = %v, %v; want an error", d, err)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if cs, err := Changes(mustPolicy(t, testPolicy), tt.sub); err == nil || cs != nil {
				t.Errorf("Changes = %v, %v: a malformed submission must give no change", cs, err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestPurposeOneTreatmentIsNoConsent(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	s := tc(all, nil, []int{1})
	s.PurposeOneTreatment = true
	// Purpose 1 was not disclosed: its bit is no consent, so nothing that
	// needs it is granted (analytics needs only purpose 8).
	if got, want := brief(Evaluate(pol, &Decoded{TCF: []*tcf.TCString{s}}, "DE")), []string{"analytics:GRANT/CONSENT(tcf)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBoundChangesKeepsRestrictive(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	received := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	future := received.Add(48 * time.Hour)
	cs, err := Changes(pol, Submission{SubjectID: "s", CapturedAt: future, Jurisdiction: "US", Signals: []Signal{
		{Type: TypeGPC, Value: "1"}, {Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted}}}})
	if err != nil || len(cs) != 2 {
		t.Fatalf("changes %+v %v", cs, err)
	}
	kept, refused := BoundChanges(cs, received, 15*time.Minute)
	if len(kept) != 1 || kept[0].Purpose != "sale" || kept[0].Action != consent.ActionWithdraw || kept[0].CapturedAt.After(received.Add(15*time.Minute)) {
		t.Errorf("kept %+v, want the WITHDRAW of sale, moved back", kept)
	}
	if len(refused) != 1 || refused[0].Purpose != "marketing" || !strings.Contains(refused[0].Reason, "captured_at") {
		t.Errorf("refused %+v, want the marketing GRANT", refused)
	}
}
