package policy

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/consentgate/consentgate/pkg/signals/gpp"
)

// Signals is the policy's signals section: how consent signals that
// upstream systems send in their own formats (IAB TCF TC strings, GPP
// strings, USP strings, the Sec-GPC header, Google Consent Mode states) map
// to the policy's purposes and data categories. Package signals applies it;
// this type is the validated data. The zero value (no section) maps nothing:
// a signal then produces no consent change at all.
type Signals struct {
	// Precedence says how the outcomes of different sources for one
	// purpose combine: PrecedenceMostRestrictive (the default) or
	// PrecedenceOrdered.
	Precedence Precedence
	// Order lists sources (see SignalSources) from strongest to weakest,
	// only with PrecedenceOrdered: the first listed source with an outcome
	// for a purpose decides it; sources not listed come after all listed
	// ones and combine most restrictively among themselves.
	Order []string
	// TCFVendorID is the controller's own vendor id in the IAB Global
	// Vendor List, 0 when not set. When set, a TCF purpose counts as
	// allowed only when the TC string also has the vendor's consent (or
	// legitimate interest, by the rule's basis), no publisher restriction
	// forbids it, and (for strings that carry the segment) the vendor was
	// disclosed.
	TCFVendorID int
	// Rules in file order.
	Rules []SignalRule
	// Line is the line of the signals key; 0 when the file has none.
	Line int
}

// Precedence is how a policy combines disagreeing signal sources.
type Precedence string

// Precedence values.
const (
	// PrecedenceMostRestrictive: any source that takes a purpose away wins
	// over every source that allows it (the default).
	PrecedenceMostRestrictive Precedence = "most_restrictive"
	// PrecedenceOrdered: the sources in Signals.Order decide in that order.
	PrecedenceOrdered Precedence = "ordered"
)

// Basis is the TCF bit a rule on a TCF purpose reads.
type Basis string

// Basis values.
const (
	// BasisConsent reads the purpose's consent bit (the default); a grant
	// has legal basis CONSENT.
	BasisConsent Basis = "consent"
	// BasisLegitimateInterest reads the purpose's legitimate-interest
	// transparency bit; a grant has legal basis LEGITIMATE_INTEREST.
	BasisLegitimateInterest Basis = "legitimate_interest"
	// BasisEither allows the purpose on either bit: CONSENT when the
	// consent bit is set, else LEGITIMATE_INTEREST.
	BasisEither Basis = "either"
)

// SignalRule is one mapping rule of the signals section: a signal field and
// what it decides. Exactly one of Purposes (a purpose rule) and Categories
// (a category rule) says what.
type SignalRule struct {
	// Signal is the field, as listed by SignalFields ("tcf.purpose.1",
	// "gpp.usnat.sale_opt_out", "gpc", "consent_mode.ad_user_data").
	Signal string
	// Basis is the TCF bit read (only for TCF purpose fields; BasisConsent
	// when not given); empty for every other field.
	Basis Basis
	// Jurisdictions limit where the rule applies (see MatchJurisdiction);
	// empty means everywhere.
	Jurisdictions []string
	// Purposes: for a purpose rule, the purposes the field decides; for a
	// category rule, the purposes whose grants get the exclusion (empty:
	// every purpose the signal grants).
	Purposes []string
	// Categories makes a category rule: unless the field allows, grants
	// made from the same signals exclude these data categories (exclusion
	// patterns, as in excluded_categories of a consent change).
	Categories []string
	// Line is the line of the rule in the policy file.
	Line int
}

// IsCategoryRule reports whether the rule excludes categories rather than
// deciding purposes.
func (r SignalRule) IsCategoryRule() bool { return len(r.Categories) > 0 }

// SignalKind says what the values of a signal field mean.
type SignalKind int

// Signal field kinds.
const (
	// SignalOptIn: the field records consent (TCF bits, Consent Mode
	// states, GPP consent fields). Allowing grants a purpose; refusing
	// denies it.
	SignalOptIn SignalKind = iota + 1
	// SignalOptOut: the field records an objection (GPC, GPP and USP
	// opt-outs). Opting out withdraws a purpose; "did not opt out" grants
	// only purposes declared opt_out, and is no grant for opt-in purposes.
	SignalOptOut
)

func (k SignalKind) String() string {
	switch k {
	case SignalOptIn:
		return "opt-in"
	case SignalOptOut:
		return "opt-out"
	}
	return fmt.Sprintf("SignalKind(%d)", int(k))
}

// SignalField is one field of the signal catalogue.
type SignalField struct {
	// Name is the field as rules write it.
	Name string
	// Source is the signal source the field belongs to: "tcf",
	// "gpp.<section>", "gpc" or "consent_mode" (see SignalSources).
	Source string
	// Kind says what its values mean.
	Kind SignalKind
	// TCFPurpose is the TCF purpose number for the fields that take a
	// basis ("tcf.purpose.N", "tcf.publisher.purpose.N"), 0 otherwise;
	// custom publisher purposes also take a basis and have TCFCustom set.
	TCFPurpose int
	TCFCustom  bool
	// Flag marks an objection flag (GPC, a GPP section's GPC subsection):
	// set, it refuses; unset, it is no signal at all, so it neither holds
	// back a grant of its source nor excludes a category.
	Flag bool
}

// TakesBasis reports whether a rule on the field may have a basis.
func (f SignalField) TakesBasis() bool { return f.TCFPurpose > 0 || f.TCFCustom }

// TCF limits of the catalogue: the purposes and special features defined
// by TCF v2.2 / v2.3, and the custom purposes a publisher segment can hold.
const (
	tcfPurposes        = 11
	tcfSpecialFeatures = 2
	tcfCustomPurposes  = 63
)

// tcfNoLegitimateInterest are the TCF purposes that v2.2 forbids to rest
// on legitimate interest (1 store/access information, 3-6 profiles and
// personalisation).
var tcfNoLegitimateInterest = []int{1, 3, 4, 5, 6}

// ConsentModeStates are the Google Consent Mode v2 states a rule can map.
var ConsentModeStates = []string{"ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"}

var catalogue = sync.OnceValues(func() ([]SignalField, map[string]int) {
	var out []SignalField
	for i := 1; i <= tcfPurposes; i++ {
		out = append(out, SignalField{Name: fmt.Sprintf("tcf.purpose.%d", i), Source: "tcf", Kind: SignalOptIn, TCFPurpose: i})
	}
	for i := 1; i <= tcfSpecialFeatures; i++ {
		out = append(out, SignalField{Name: fmt.Sprintf("tcf.special_feature.%d", i), Source: "tcf", Kind: SignalOptIn})
	}
	for i := 1; i <= tcfPurposes; i++ {
		out = append(out, SignalField{Name: fmt.Sprintf("tcf.publisher.purpose.%d", i), Source: "tcf", Kind: SignalOptIn, TCFPurpose: i})
	}
	for i := 1; i <= tcfCustomPurposes; i++ {
		out = append(out, SignalField{Name: fmt.Sprintf("tcf.publisher.custom_purpose.%d", i), Source: "tcf", Kind: SignalOptIn, TCFCustom: true})
	}
	for _, sec := range gpp.SectionNames() {
		for _, f := range gpp.FieldNames(sec) {
			k, _ := gpp.FieldKind(sec, f)
			kind := SignalOptOut
			if k == gpp.Consent {
				kind = SignalOptIn
			}
			out = append(out, SignalField{Name: "gpp." + sec + "." + f, Source: "gpp." + sec, Kind: kind, Flag: k == gpp.Flag})
		}
	}
	out = append(out, SignalField{Name: "gpc", Source: "gpc", Kind: SignalOptOut, Flag: true})
	for _, s := range ConsentModeStates {
		out = append(out, SignalField{Name: "consent_mode." + s, Source: "consent_mode", Kind: SignalOptIn})
	}
	idx := make(map[string]int, len(out))
	for i, f := range out {
		idx[f.Name] = i
	}
	return out, idx
})

// SignalFields returns the whole catalogue of signal fields a rule can map,
// in documentation order. The caller must not modify it.
func SignalFields() []SignalField {
	fields, _ := catalogue()
	return fields
}

// LookupSignalField returns the catalogue entry of a field name.
func LookupSignalField(name string) (SignalField, bool) {
	fields, idx := catalogue()
	i, ok := idx[name]
	if !ok {
		return SignalField{}, false
	}
	return fields[i], true
}

// SignalSources returns every signal source, in documentation order: "tcf",
// "gpp.<section>" for each GPP section with mappable fields, "gpc",
// "consent_mode".
func SignalSources() []string {
	var out []string
	for _, f := range SignalFields() {
		if !slices.Contains(out, f.Source) {
			out = append(out, f.Source)
		}
	}
	return out
}

// EEA lists the ISO 3166-1 alpha-2 codes of the European Economic Area (the
// 27 EU member states, Iceland, Liechtenstein and Norway): the jurisdiction
// EEA covers them.
var EEA = []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"}

// MatchJurisdiction reports whether a rule jurisdiction covers the
// jurisdiction of a signal. Jurisdictions are ISO 3166-1 alpha-2 country
// codes ("DE", "US"), ISO 3166-2 subdivisions ("US-CA"), or "EEA". A
// country covers its subdivisions ("US" covers "US-CA"), "EEA" covers its
// member countries and their subdivisions; nothing else matches. An empty
// signal jurisdiction (not known) is covered by nothing.
func MatchJurisdiction(rule, signal string) bool {
	if signal == "" || rule == "" {
		return false
	}
	if rule == signal || strings.HasPrefix(signal, rule+"-") {
		return true
	}
	if rule == "EEA" {
		country, _, _ := strings.Cut(signal, "-")
		return slices.Contains(EEA, country)
	}
	return false
}

// AppliesIn reports whether the rule applies to a signal of the given
// jurisdiction ("" when not known): a rule without jurisdictions applies
// everywhere; otherwise one of its jurisdictions must cover the signal's.
// For a signal of unknown jurisdiction, package signals still applies what
// such a rule takes away (fail closed), never what it grants.
func (r SignalRule) AppliesIn(jurisdiction string) bool {
	if len(r.Jurisdictions) == 0 {
		return true
	}
	for _, j := range r.Jurisdictions {
		if MatchJurisdiction(j, jurisdiction) {
			return true
		}
	}
	return false
}

// Unmapped returns the catalogue fields that no rule maps, for every
// source that at least one rule maps (a source the policy ignores
// altogether is reported by UnmappedSources). enforcer check lists them.
func (s Signals) Unmapped() []string {
	mapped := map[string]bool{}
	sources := map[string]bool{}
	for _, r := range s.Rules {
		mapped[r.Signal] = true
		if f, ok := LookupSignalField(r.Signal); ok {
			sources[f.Source] = true
		}
	}
	var out []string
	for _, f := range SignalFields() {
		if sources[f.Source] && !mapped[f.Name] {
			out = append(out, f.Name)
		}
	}
	return out
}

// UnmappedSources returns the signal sources no rule maps: signals from
// them produce no consent change.
func (s Signals) UnmappedSources() []string {
	sources := map[string]bool{}
	for _, r := range s.Rules {
		if f, ok := LookupSignalField(r.Signal); ok {
			sources[f.Source] = true
		}
	}
	var out []string
	for _, src := range SignalSources() {
		if !sources[src] {
			out = append(out, src)
		}
	}
	return out
}
