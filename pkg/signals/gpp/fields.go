package gpp

import (
	"slices"
	"strconv"
)

// Kind says what the non-zero values of a mappable field mean. Every mappable
// field of a US section is a 2-bit integer whose value 0 means "not
// applicable"; the two other defined values are read through its Kind. The
// GPC flag of a GPC subsection is a single bit and has Kind Flag.
type Kind int

const (
	// OptOut: 1 = the consumer opted out, 2 = did not opt out, 0 = not
	// applicable (the matching notice was not given or the activity does
	// not happen).
	OptOut Kind = iota + 1
	// Consent: 1 = no consent, 2 = consent, 0 = not applicable.
	Consent
	// Flag: the GPC bit; the Fields value is 1 when the GPC signal was
	// present (the consumer opted out), 0 when not.
	Flag
)

// String returns "opt_out", "consent" or "flag" ("" for an unknown Kind).
func (k Kind) String() string {
	switch k {
	case OptOut:
		return "opt_out"
	case Consent:
		return "consent"
	case Flag:
		return "flag"
	}
	return ""
}

// field is one field of a section layout, in the order it is encoded.
type field struct {
	name string // snake_case of the spec's field name
	bits int    // width of one value: 2 (Int(2) and N-Bitfield(2,n)) or 6 (Int(6))
	n    int    // 0: a single integer; n > 0: an N-Bitfield(2,n) list, named name.1 .. name.n
	kind Kind   // 0: a notice/MSPA/version field (not mappable)
	min  int    // smallest value the spec defines (MspaCoveredTransaction: 1)
	max  int    // largest value the spec defines (2 for the 2-bit fields; 63 for Int(6))
}

func opt(name string) field            { return field{name: name, bits: 2, kind: OptOut, max: 2} }
func optList(name string, n int) field { return field{name: name, bits: 2, n: n, kind: OptOut, max: 2} }
func cons(name string) field           { return field{name: name, bits: 2, kind: Consent, max: 2} }
func consList(name string, n int) field {
	return field{name: name, bits: 2, n: n, kind: Consent, max: 2}
}
func notice(name string) field { return field{name: name, bits: 2, max: 2} }
func int6(name string) field   { return field{name: name, bits: 6, max: 63} }

// mspaCovered is MspaCoveredTransaction: 1 = yes, 2 = no; 0 is not defined.
var mspaCovered = field{name: "mspa_covered_transaction", bits: 2, min: 1, max: 2}

// mspaTail is the three MSPA fields that end every classic US core segment.
var mspaTail = []field{mspaCovered, notice("mspa_opt_out_option_mode"), notice("mspa_service_provider_mode")}

// layout is how one version of a section is encoded.
//
// Classic layout (usnat, usca ... usmn): the core segment starts with
// Version Int(6) (not listed in core), then the core fields; an optional GPC
// subsection (SubsectionType Int(2) = 1, Gpc Boolean) follows after '.' when
// gpc is true.
//
// MSPA-versioned layout (usmd, usin, usky, usri; mspa true): no Version field
// in the core segment (the section version is 1); the core starts with
// MspaVersion Int(6). An optional second segment after '.' is the GPC
// subsection (usmd, gpc true) or the sensitive data consents subsection
// (usin, usky, usri: sensitive non-nil, no type field, an N-Bitfield(2,8)).
type layout struct {
	core      []field
	gpc       bool
	mspa      bool
	sensitive []field
}

// sectionDef is one supported US section: its GPP id, client-side API
// prefix and its layouts by section version.
type sectionDef struct {
	id       int
	name     string
	versions map[int]layout
}

func join(parts ...[]field) []field { return slices.Concat(parts...) }

// usSections is the catalogue, taken from the section specifications of
// InteractiveAdvertisingBureau/Global-Privacy-Platform (Sections/US-National,
// Sections/US-States/*) and checked against IABTechLab/iabgpp-es.
var usSections = []sectionDef{
	{id: 7, name: "usnat", versions: map[int]layout{
		// v1 (December 2022): SensitiveDataProcessing 12, KnownChild 2.
		1: {gpc: true, core: join([]field{
			notice("sharing_notice"), notice("sale_opt_out_notice"), notice("sharing_opt_out_notice"),
			notice("targeted_advertising_opt_out_notice"), notice("sensitive_data_processing_opt_out_notice"),
			notice("sensitive_data_limit_use_notice"),
			opt("sale_opt_out"), opt("sharing_opt_out"), opt("targeted_advertising_opt_out"),
			consList("sensitive_data_processing", 12), consList("known_child_sensitive_data_consents", 2),
			cons("personal_data_consents"),
		}, mspaTail)},
		// v2 (October 2024): SensitiveDataProcessing 16, KnownChild 3.
		2: {gpc: true, core: join([]field{
			notice("sharing_notice"), notice("sale_opt_out_notice"), notice("sharing_opt_out_notice"),
			notice("targeted_advertising_opt_out_notice"), notice("sensitive_data_processing_opt_out_notice"),
			notice("sensitive_data_limit_use_notice"),
			opt("sale_opt_out"), opt("sharing_opt_out"), opt("targeted_advertising_opt_out"),
			consList("sensitive_data_processing", 16), consList("known_child_sensitive_data_consents", 3),
			cons("personal_data_consents"),
		}, mspaTail)},
	}},
	{id: 8, name: "usca", versions: map[int]layout{
		// California: SensitiveDataProcessing is a limit-use OPT-OUT list.
		1: {gpc: true, core: join([]field{
			notice("sale_opt_out_notice"), notice("sharing_opt_out_notice"), notice("sensitive_data_limit_use_notice"),
			opt("sale_opt_out"), opt("sharing_opt_out"),
			optList("sensitive_data_processing", 9), consList("known_child_sensitive_data_consents", 2),
			cons("personal_data_consents"),
		}, mspaTail)},
	}},
	{id: 9, name: "usva", versions: map[int]layout{
		1: {core: join([]field{
			notice("sharing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
			opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
			consList("sensitive_data_processing", 8), cons("known_child_sensitive_data_consents"),
		}, mspaTail)},
	}},
	{id: 10, name: "usco", versions: map[int]layout{
		1: {gpc: true, core: join([]field{
			notice("sharing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
			opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
			consList("sensitive_data_processing", 7), cons("known_child_sensitive_data_consents"),
		}, mspaTail)},
	}},
	{id: 11, name: "usut", versions: map[int]layout{
		// Utah: SensitiveDataProcessing is an OPT-OUT list.
		1: {core: join([]field{
			notice("sharing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
			notice("sensitive_data_processing_opt_out_notice"),
			opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
			optList("sensitive_data_processing", 8), cons("known_child_sensitive_data_consents"),
		}, mspaTail)},
	}},
	{id: 12, name: "usct", versions: map[int]layout{
		1: {gpc: true, core: join([]field{
			notice("sharing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
			opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
			consList("sensitive_data_processing", 8), consList("known_child_sensitive_data_consents", 3),
		}, mspaTail)},
	}},
	{id: 13, name: "usfl", versions: map[int]layout{
		1: {core: stateCore(8, 3, true)},
	}},
	{id: 14, name: "usmt", versions: map[int]layout{
		// Montana's first notice is named SharingNotice in the spec.
		1: {gpc: true, core: join([]field{
			notice("sharing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
			opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
			consList("sensitive_data_processing", 8), consList("known_child_sensitive_data_consents", 3),
			cons("additional_data_processing_consent"),
		}, mspaTail)},
	}},
	{id: 15, name: "usor", versions: map[int]layout{1: {gpc: true, core: stateCore(11, 3, true)}}},
	{id: 16, name: "ustx", versions: map[int]layout{1: {gpc: true, core: stateCore(8, 0, true)}}},
	{id: 17, name: "usde", versions: map[int]layout{1: {gpc: true, core: stateCore(9, 5, true)}}},
	{id: 18, name: "usia", versions: map[int]layout{
		// Iowa: SensitiveDataProcessing is an OPT-OUT list.
		1: {gpc: true, core: join([]field{
			notice("processing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
			notice("sensitive_data_opt_out_notice"),
			opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
			optList("sensitive_data_processing", 8), cons("known_child_sensitive_data_consents"),
		}, mspaTail)},
	}},
	{id: 19, name: "usne", versions: map[int]layout{1: {gpc: true, core: stateCore(8, 0, true)}}},
	{id: 20, name: "usnh", versions: map[int]layout{1: {gpc: true, core: stateCore(8, 3, true)}}},
	{id: 21, name: "usnj", versions: map[int]layout{1: {gpc: true, core: stateCore(10, 5, true)}}},
	// Tennessee: the spec names the field KnownChildSensitiveDataConsent
	// (singular) and its table omits MspaCoveredTransaction; the reference
	// implementation (and every other state) has both: we follow it.
	{id: 22, name: "ustn", versions: map[int]layout{1: {gpc: true, core: stateCore(8, 0, true)}}},
	{id: 23, name: "usmn", versions: map[int]layout{1: {gpc: true, core: stateCore(8, 0, true)}}},
	{id: 24, name: "usmd", versions: map[int]layout{
		1: {mspa: true, gpc: true, core: join(mspaHead(), []field{
			notice("processing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
			opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
			cons("additional_data_processing_consent"),
		})},
	}},
	{id: 25, name: "usin", versions: map[int]layout{1: mspaSensitiveLayout()}},
	{id: 26, name: "usky", versions: map[int]layout{1: mspaSensitiveLayout()}},
	{id: 27, name: "usri", versions: map[int]layout{1: mspaSensitiveLayout()}},
}

// stateCore is the core layout shared by the 2024 state sections (FL, OR,
// TX, DE, NE, NH, NJ, TN, MN): ProcessingNotice, SaleOptOutNotice,
// TargetedAdvertisingOptOutNotice, SaleOptOut, TargetedAdvertisingOptOut,
// SensitiveDataProcessing N-Bitfield(2,sdp), KnownChildSensitiveDataConsents
// (Int(2) when kc is 0, else N-Bitfield(2,kc)), AdditionalDataProcessingConsent,
// then the MSPA fields.
func stateCore(sdp, kc int, additional bool) []field {
	f := []field{
		notice("processing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
		opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
		consList("sensitive_data_processing", sdp),
	}
	if kc == 0 {
		f = append(f, cons("known_child_sensitive_data_consents"))
	} else {
		f = append(f, consList("known_child_sensitive_data_consents", kc))
	}
	if additional {
		f = append(f, cons("additional_data_processing_consent"))
	}
	return join(f, mspaTail)
}

// mspaHead is the start of the MSPA-versioned core: MspaVersion Int(6),
// MspaCoveredTransaction, MspaMode (0 n/a, 1 opt-out option, 2 service provider).
func mspaHead() []field {
	return []field{int6("mspa_version"), mspaCovered, notice("mspa_mode")}
}

// mspaSensitiveLayout is usin, usky and usri version 1: MSPA-versioned core
// and the sensitive data consents subsection (N-Bitfield(2,8), consent).
func mspaSensitiveLayout() layout {
	return layout{mspa: true, core: join(mspaHead(), []field{
		notice("processing_notice"), notice("sale_opt_out_notice"), notice("targeted_advertising_opt_out_notice"),
		opt("sale_opt_out"), opt("targeted_advertising_opt_out"),
		cons("known_child_sensitive_data_consents"), cons("additional_data_processing_consent"),
	}), sensitive: []field{consList("sensitive_data_processing", 8)}}
}

// Section ids of the GPP registry ("Sections/Section Information.md").
const (
	idTCFEUv2 = 2
	idHeader  = 3
	idUSPv1   = 6
)

// uspv1 is the USP v1 ("1YNN") section: its mappable field is the sale opt-out.
const uspv1Name = "uspv1"

var (
	byName = map[string]*sectionDef{}
	byID   = map[int]*sectionDef{}
)

func init() {
	for i := range usSections {
		d := &usSections[i]
		byName[d.name] = d
		byID[d.id] = d
	}
}

// SectionNames returns the client-side API prefixes of the sections whose
// fields can be mapped by policy: the US sections in section id order,
// "usnat", "usca", "usva", "usco", "usut", "usct", "usfl", "usmt", "usor",
// "ustx", "usde", "usia", "usne", "usnh", "usnj", "ustn", "usmn", "usmd",
// "usin", "usky", "usri", then "uspv1". "tcfeuv2" is not listed: its TC string is mapped by the
// tcf.* rules of the policy, not by GPP field names. The slice is a fresh
// copy on each call.
func SectionNames() []string {
	names := make([]string, 0, len(usSections)+1)
	for _, d := range usSections {
		names = append(names, d.name)
	}
	return append(names, uspv1Name)
}

// FieldNames returns every mappable field name of a section: the union over
// all versions of the section, in encoding order of its newest version
// followed by the names only older versions have (there are none today:
// usnat v1's lists are prefixes of v2's). Names are the snake_case of the
// spec's field names; an N-Bitfield list is one name per entry, "name.1" ..
// "name.N" (1-based). "gpc" is listed when the section has a GPC subsection.
// Notice, MSPA and version fields are not mappable and not listed (they are
// in Section.Notices). An unknown section gives nil. The slice is a fresh
// copy on each call.
//
//	usnat: sale_opt_out, sharing_opt_out, targeted_advertising_opt_out,
//	       sensitive_data_processing.1..16, known_child_sensitive_data_consents.1..3,
//	       personal_data_consents, gpc
//	uspv1: sale_opt_out
func FieldNames(section string) []string {
	if section == uspv1Name {
		return []string{"sale_opt_out"}
	}
	d, ok := byName[section]
	if !ok {
		return nil
	}
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	versions := make([]int, 0, len(d.versions))
	for v := range d.versions {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	slices.Reverse(versions)
	gpc := false
	for _, v := range versions {
		l := d.versions[v]
		for _, f := range join(l.core, l.sensitive) {
			if f.kind == 0 {
				continue
			}
			for _, n := range f.names() {
				add(n)
			}
		}
		gpc = gpc || l.gpc
	}
	if gpc {
		add("gpc")
	}
	return names
}

// FieldKind returns the Kind of a mappable field of a section and true, or
// 0 and false when the section or the field is not in the catalogue.
func FieldKind(section, name string) (Kind, bool) {
	if section == uspv1Name {
		if name == "sale_opt_out" {
			return OptOut, true
		}
		return 0, false
	}
	d, ok := byName[section]
	if !ok {
		return 0, false
	}
	for _, l := range d.versions {
		if name == "gpc" && l.gpc {
			return Flag, true
		}
		for _, f := range join(l.core, l.sensitive) {
			if f.kind != 0 && slices.Contains(f.names(), name) {
				return f.kind, true
			}
		}
	}
	return 0, false
}

// names returns the field's names: name for a single integer, name.1 ..
// name.n for a list.
func (f field) names() []string {
	if f.n == 0 {
		return []string{f.name}
	}
	out := make([]string, f.n)
	for i := range out {
		out[i] = f.name + "." + strconv.Itoa(i+1)
	}
	return out
}
