package policy

import (
	"errors"
	"fmt"
	"regexp"
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
	// nothing (no objection is no consent).
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

// EEA lists the ISO 3166-1 alpha-2 codes the jurisdiction EEA covers: the
// 27 EU member states, Iceland, Liechtenstein and Norway, and the parts of
// EU member states that ISO codes apart but where the GDPR applies as in
// the rest of the Union: the French outermost regions (Guadeloupe GP,
// French Guiana GF, Martinique MQ, Réunion RE, Mayotte YT, Saint-Martin MF)
// and the Åland Islands (AX).
var EEA = []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
	"GP", "GF", "MQ", "RE", "YT", "MF", "AX"}

// isoCountries are the ISO 3166-1 alpha-2 codes officially assigned.
var isoCountries = strings.Fields(`AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR
LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK
PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR
TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW`)

// CheckJurisdiction reports whether j is a customer jurisdiction a signal
// submission may name: an ISO 3166-1 alpha-2 code that is assigned ("DE",
// "GB", never "UK" or "EU"), optionally with an ISO 3166-2 subdivision
// ("US-CA"). An unknown code is refused rather than matched by no rule, so
// that a typo cannot silently put a customer outside every jurisdiction
// (where the rules of the other jurisdictions, refusals included, do not
// apply). The error says what is wrong without repeating j.
func CheckJurisdiction(j string) error {
	country, sub, hasSub := strings.Cut(j, "-")
	switch {
	case country == "UK":
		return errors.New(`is "UK": the ISO 3166-1 code of the United Kingdom is GB`)
	case country == "EU" || country == "EEA":
		return errors.New("names a region: give the customer's country (ISO 3166-1 alpha-2, e.g. DE)")
	case !slices.Contains(isoCountries, country):
		return errors.New("is not an assigned ISO 3166-1 alpha-2 country code (upper case, e.g. DE, US), optionally with an ISO 3166-2 subdivision (US-CA)")
	case hasSub && !subdivisionSyntax.MatchString(sub):
		return errors.New("has a subdivision that is not 1 to 3 upper case letters or digits, as in US-CA")
	case hasSub && country == "US" && !slices.Contains(usSubdivisions, sub):
		// US state law is where signal rules differ by subdivision: a typo
		// there would put the customer outside every state's rules.
		return errors.New("has a US subdivision that is not a state, DC or a territory (ISO 3166-2:US, e.g. US-CA)")
	}
	return nil
}

// usSubdivisions are the ISO 3166-2:US codes: the states, DC and the
// outlying areas.
var usSubdivisions = strings.Fields(`AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH
OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR UM VI`)

var subdivisionSyntax = regexp.MustCompile(`^[A-Z0-9]{1,3}$`)

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
	country, _, _ := strings.Cut(signal, "-")
	if rule == "EEA" {
		return slices.Contains(EEA, country)
	}
	// A territory that ISO codes apart but that is part of a country for
	// its privacy law: a rule for the country covers it.
	return partOf[country] != "" && (rule == partOf[country] || rule == partOf[country]+"-"+country)
}

// partOf maps ISO 3166-1 codes of territories that are part of a country
// for its privacy law to that country: the French outermost regions and
// the Åland Islands (under the GDPR as France and Finland), and the US
// territories. A rule for FR covers GF; a rule for US covers PR.
var partOf = map[string]string{"GP": "FR", "GF": "FR", "MQ": "FR", "RE": "FR", "YT": "FR", "MF": "FR", "AX": "FI",
	// US territories, coded apart by ISO 3166-1 and as US-xx by 3166-2.
	"PR": "US", "GU": "US", "VI": "US", "AS": "US", "MP": "US", "UM": "US"}

// AppliesIn reports whether the rule applies to a signal of the given
// jurisdiction ("" when not known): a rule without jurisdictions applies
// everywhere; otherwise one of its jurisdictions must cover the signal's.
// See Coverage for the case in between.
func (r SignalRule) AppliesIn(jurisdiction string) bool {
	return r.Coverage(jurisdiction) == CoverFull
}

// Cover says how far a rule's jurisdictions cover a customer's.
type Cover int

// Cover values.
const (
	// CoverNone: the customer is known to be elsewhere; the rule does not
	// apply.
	CoverNone Cover = iota
	// CoverPartial: the rule may apply, as far as the jurisdiction is
	// known: it is not known at all, or only at a coarser level than the
	// rule's ("US" for a rule limited to US-CA). Package signals then lets
	// the rule take consent away (and exclude categories), never grant.
	CoverPartial
	// CoverFull: the rule applies.
	CoverFull
)

// Coverage says whether the rule applies to a customer of the given
// jurisdiction ("" when not known).
func (r SignalRule) Coverage(jurisdiction string) Cover {
	if len(r.Jurisdictions) == 0 {
		return CoverFull
	}
	if jurisdiction == "" {
		return CoverPartial
	}
	partial := false
	for _, j := range r.Jurisdictions {
		if MatchJurisdiction(j, jurisdiction) {
			return CoverFull
		}
		// The rule names a part of the customer's jurisdiction (a
		// subdivision, or a territory coded apart): the customer may be
		// in it.
		if strings.HasPrefix(j, jurisdiction+"-") || partOf[strings.SplitN(j, "-", 2)[0]] == jurisdiction {
			partial = true
		}
	}
	if partial {
		return CoverPartial
	}
	return CoverNone
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
