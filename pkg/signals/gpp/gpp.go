package gpp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformed is the error every parse failure matches with errors.Is.
var ErrMalformed = errors.New("malformed GPP string")

// MaxLength is the longest input Parse and ParseUSP accept, in bytes. A longer
// input is rejected before any decoding.
const MaxLength = 64 << 10

// ParseError is the error of Parse and ParseUSP: which part of the string is
// malformed, the bit offset inside that part's decoded segment when it
// applies, and why. It never contains the input text.
//
// Section is "string" for the whole input (length, '~' structure),
// "header" for the GPP header, the section's client-side API prefix
// ("usnat", "uspv1", "tcfeuv2", ...) or "section N" for a section id the
// package does not decode. Bit is -1 when the reason is not about a bit
// position (for instance a bad character, a missing section).
type ParseError struct {
	Section string
	Bit     int
	Reason  string
}

// Error formats the error as "gpp: usnat: bit 24: invalid value 3 for
// sale_opt_out", or without the bit part when Bit is -1.
func (e *ParseError) Error() string {
	if e.Bit >= 0 {
		return fmt.Sprintf("gpp: %s: bit %d: %s", e.Section, e.Bit, e.Reason)
	}
	return fmt.Sprintf("gpp: %s: %s", e.Section, e.Reason)
}

// Is reports whether target is ErrMalformed, so that errors.Is(err,
// ErrMalformed) holds for every ParseError.
func (e *ParseError) Is(target error) bool { return target == ErrMalformed }

func errf(section string, bit int, format string, args ...any) *ParseError {
	return &ParseError{Section: section, Bit: bit, Reason: fmt.Sprintf(format, args...)}
}

// Section is one decoded discrete section of a GPP string.
//
// ID and Name: the GPP section id and its client-side API prefix: 2
// "tcfeuv2", 6 "uspv1", 7 "usnat", 8 "usca", 9 "usva", 10 "usco", 11 "usut",
// 12 "usct", 13 "usfl", 14 "usmt", 15 "usor", 16 "ustx", 17 "usde", 18
// "usia", 19 "usne", 20 "usnh", 21 "usnj", 22 "ustn", 23 "usmn", 24 "usmd",
// 25 "usin", 26 "usky", 27 "usri". Any other id (1 tcfeuv1, 4, 5 tcfcav1, ids
// registered later) is kept undecoded with Name "".
//
// Version is the section's own version field (usnat 1 or 2, the states 1);
// 0 for tcfeuv2, uspv1 and unsupported sections. Raw is the section's text
// exactly as it appears between the '~' delimiters. TCF is, for id 2, the TC
// string the section carries (decode it with package tcf), "" otherwise.
//
// Fields holds, for the US sections and uspv1, every mappable field the
// string carries, by the names FieldNames lists, with its decoded value: 0,
// 1 or 2 for the 2-bit fields (read them with FieldKind), 0 or 1 for "gpc".
// A field the section's version does not have (usnat v1 has 12 sensitive
// data entries, not 16) or a subsection the string does not include (the
// GPC subsection, the sensitive data consents subsection) is absent from
// the map, never reported as 0. Fields is nil for other sections.
//
// GPC is the Gpc bit of the GPC subsection when the section includes one,
// nil when it does not. Notices holds the notice, MSPA and (usmd, usin,
// usky, usri) mspa_version fields, and for uspv1 "notice" and
// "lspa_covered": not mappable, kept for the audit and explanations.
type Section struct {
	ID      int
	Name    string
	Version int
	Raw     string
	TCF     string
	Fields  map[string]int
	GPC     *bool
	Notices map[string]int
}

// String is a decoded GPP string: the header's GPP version (always 1), the
// section ids of the header in order, and one Section per id, in the same
// order.
type String struct {
	Version    int
	SectionIDs []int
	Sections   []Section
}

// Section returns the first section with the given name and true, or a zero
// Section and false.
func (s *String) Section(name string) (Section, bool) {
	for _, sec := range s.Sections {
		if sec.Name != "" && sec.Name == name {
			return sec, true
		}
	}
	return Section{}, false
}

// Parse decodes a whole GPP string: the header, then every section the
// header lists. It returns the decoded String or, when anything is
// malformed, nil and a *ParseError (errors.Is(err, ErrMalformed)); it never
// returns a partial result. See the package documentation for what is
// decoded and what is rejected.
func Parse(s string) (*String, error) {
	if len(s) > MaxLength {
		return nil, errf("string", -1, "too long: %d bytes, limit %d", len(s), MaxLength)
	}
	if s == "" {
		return nil, errf("string", -1, "empty")
	}
	parts := strings.Split(s, "~")
	h, err := parseHeader(parts[0], len(parts)-1)
	if err != nil {
		return nil, err
	}
	if len(h.ids) != len(parts)-1 {
		return nil, errf("header", -1, "header lists %d sections, the string has %d", len(h.ids), len(parts)-1)
	}
	out := &String{Version: h.version, SectionIDs: h.ids, Sections: make([]Section, 0, len(h.ids))}
	for i, id := range h.ids {
		sec, err := parseSection(id, parts[i+1])
		if err != nil {
			return nil, err
		}
		out.Sections = append(out.Sections, sec)
	}
	return out, nil
}

type header struct {
	version int
	ids     []int
}

// parseHeader decodes the header: Type Int(6) = 3, Version Int(6) = 1,
// Sections Range(Fibonacci). maxIDs bounds the number of ids it expands (the
// number of sections in the string): a header listing more is an error
// before any allocation for it.
func parseHeader(text string, maxIDs int) (header, error) {
	const sec = "header"
	r, err := newReader(sec, text)
	if err != nil {
		return header{}, err
	}
	typ, err := r.int(6, "type")
	if err != nil {
		return header{}, err
	}
	if typ != idHeader {
		return header{}, errf(sec, 0, "type %d, want %d", typ, idHeader)
	}
	version, err := r.int(6, "version")
	if err != nil {
		return header{}, err
	}
	if version != 1 {
		return header{}, errf(sec, 6, "unsupported version %d", version)
	}
	ids, err := r.fibonacciRange("section ids", maxIDs)
	if err != nil {
		return header{}, err
	}
	if err := r.end(); err != nil {
		return header{}, err
	}
	return header{version: version, ids: ids}, nil
}

func sectionLabel(id int) string {
	if d, ok := byID[id]; ok {
		return d.name
	}
	switch id {
	case idTCFEUv2:
		return "tcfeuv2"
	case idUSPv1:
		return uspv1Name
	}
	return "section " + strconv.Itoa(id)
}

func parseSection(id int, text string) (Section, error) {
	label := sectionLabel(id)
	if text == "" {
		return Section{}, errf(label, -1, "empty section")
	}
	switch id {
	case idTCFEUv2:
		if err := checkTCF(text); err != nil {
			return Section{}, err
		}
		return Section{ID: id, Name: label, Raw: text, TCF: text}, nil
	case idUSPv1:
		u, err := ParseUSP(text)
		if err != nil {
			return Section{}, err
		}
		return Section{ID: id, Name: label, Raw: text,
			Fields:  map[string]int{"sale_opt_out": uspValue(u.OptOutSale)},
			Notices: map[string]int{"notice": uspValue(u.Notice), "lspa_covered": uspValue(u.LSPACovered)},
		}, nil
	}
	d, ok := byID[id]
	if !ok {
		if err := checkOpaque(label, text); err != nil {
			return Section{}, err
		}
		return Section{ID: id, Raw: text}, nil
	}
	return parseUS(d, text)
}

// checkTCF checks that a tcfeuv2 section is made of base64url segments
// joined by '.'; the TC string itself is decoded by package tcf.
func checkTCF(text string) error {
	for i, seg := range strings.Split(text, ".") {
		if seg == "" {
			return errf("tcfeuv2", -1, "empty segment %d", i+1)
		}
		for j := 0; j < len(seg); j++ {
			if sextet(seg[j]) < 0 {
				return errf("tcfeuv2", -1, "segment %d: character %d is not base64url", i+1, j+1)
			}
		}
	}
	return nil
}

// checkOpaque checks that an undecoded section holds only URL-safe
// characters other than '~' (the GPP spec's rule for any section encoding).
func checkOpaque(label, text string) error {
	for i := 0; i < len(text); i++ {
		c := text[i]
		if sextet(c) < 0 && c != '.' {
			return errf(label, -1, "character %d is not URL-safe", i+1)
		}
	}
	return nil
}

// parseUS decodes a US section: the core segment, then its subsections.
func parseUS(d *sectionDef, text string) (Section, error) {
	segs := strings.Split(text, ".")
	for i, s := range segs {
		if s == "" {
			return Section{}, errf(d.name, -1, "empty segment %d", i+1)
		}
	}
	core, err := newReader(d.name, segs[0])
	if err != nil {
		return Section{}, err
	}
	sec := Section{ID: d.id, Name: d.name, Raw: text, Fields: map[string]int{}, Notices: map[string]int{}}
	var l layout
	if _, ok := d.versions[1]; ok && d.versions[1].mspa {
		// MSPA-versioned sections have no Version field: version 1.
		sec.Version, l = 1, d.versions[1]
		// A string in the section-header form of the public-comment specs
		// (SectionID Int(6), Version Int(6), SubSections) starts with the
		// section id where our layout expects MspaVersion: refuse it
		// instead of reading its header as fields.
		if v, err := core.peek(6); err == nil && v == d.id {
			return Section{}, errf(d.name, 0, "section header form (section id %d first) is not supported", v)
		}
	} else {
		v, err := core.int(6, "version")
		if err != nil {
			return Section{}, err
		}
		var ok bool
		if l, ok = d.versions[v]; !ok {
			return Section{}, errf(d.name, 0, "unsupported version %d", v)
		}
		sec.Version = v
	}
	if err := core.fields(l.core, &sec); err != nil {
		return Section{}, err
	}
	if err := core.end(); err != nil {
		return Section{}, err
	}
	switch {
	case len(segs) == 1:
	case len(segs) > 2:
		return Section{}, errf(d.name, -1, "%d subsections, at most 1 allowed", len(segs)-1)
	case l.gpc:
		if err := parseGPC(d.name, segs[1], &sec); err != nil {
			return Section{}, err
		}
	case l.sensitive != nil:
		r, err := newReader(d.name+" sensitive data consents", segs[1])
		if err != nil {
			return Section{}, err
		}
		if err := r.fields(l.sensitive, &sec); err != nil {
			return Section{}, err
		}
		if err := r.end(); err != nil {
			return Section{}, err
		}
	default:
		return Section{}, errf(d.name, -1, "section version %d has no subsections", sec.Version)
	}
	return sec, nil
}

// parseGPC decodes a GPC subsection: SubsectionType Int(2) = 1, Gpc Boolean.
func parseGPC(name, text string, sec *Section) error {
	label := name + " gpc"
	r, err := newReader(label, text)
	if err != nil {
		return err
	}
	typ, err := r.int(2, "subsection type")
	if err != nil {
		return err
	}
	switch typ {
	case 1:
	case 0:
		return errf(label, 0, "subsection type 0 (core) after the core segment")
	default:
		return errf(label, 0, "unknown subsection type %d", typ)
	}
	g, err := r.int(1, "gpc")
	if err != nil {
		return err
	}
	if err := r.end(); err != nil {
		return err
	}
	b := g == 1
	sec.GPC = &b
	sec.Fields["gpc"] = g
	return nil
}
