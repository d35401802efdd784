package tcf

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed is the sentinel every decoding error matches with errors.Is.
// A string that yields ErrMalformed carries no usable signal at all: Parse
// never returns a partly decoded value next to it, so a caller that treats the
// error as "no consent" fails closed.
var ErrMalformed = errors.New("malformed TC string")

// ParseError says why and where a TC string was rejected.
//
// Segment names the part of the string the problem was found in: "core",
// "disclosed vendors", "allowed vendors", "publisher TC", or "string" for
// problems of the string as a whole (too long, empty segment, unknown segment
// type, a missing mandatory segment). Bit is the bit offset inside that
// segment's decoded bits at which the offending field starts, or -1 when no
// single position applies. Reason is a short lower-case text.
//
// The error text never contains the input string or any part of it: TC
// strings are attacker-controlled data and may be long, so they are treated as
// data and not as message text.
type ParseError struct {
	Segment string
	Bit     int
	Reason  string
}

// Error formats the error as "tcf: <segment> segment: bit <n>: <reason>",
// leaving out the segment for whole-string problems and the bit when it is -1.
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("tcf: ")
	if e.Segment != "" && e.Segment != segString {
		b.WriteString(e.Segment)
		b.WriteString(" segment: ")
	}
	if e.Bit >= 0 {
		b.WriteString("bit ")
		b.WriteString(strconv.Itoa(e.Bit))
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is reports whether t is ErrMalformed, so that errors.Is(err, ErrMalformed)
// holds for every *ParseError.
func (e *ParseError) Is(t error) bool { return t == ErrMalformed }

// Segment names used in ParseError.Segment.
const (
	segString    = "string"
	segCore      = "core"
	segDisclosed = "disclosed vendors"
	segAllowed   = "allowed vendors"
	segPublisher = "publisher TC"
)

// MaxLength is the longest input Parse accepts, in bytes (64 KiB). Longer
// inputs are rejected before any decoding.
const MaxLength = 64 << 10

// span is an inclusive range of ids.
type span struct{ lo, hi uint16 }

// Set is an immutable set of small positive integers: purpose ids (1..24),
// special feature ids (1..12), custom purpose ids (1..63) or vendor ids
// (1..65535). The zero Set is empty and ready to use.
//
// A Set is stored as sorted, non-overlapping, non-adjacent ranges, so its size
// in memory is proportional to the number of runs in the encoded string and
// never to a count claimed by the string: a range entry "1-65535" costs one
// range, not 65535 ids. Two Sets holding the same ids have identical internal
// representations, so Equal and reflect.DeepEqual agree.
type Set struct {
	spans []span
}

// Has reports whether id is in the set. Ids outside 1..65535 are never in a
// set.
func (s Set) Has(id int) bool {
	if id < 1 || id > 0xFFFF {
		return false
	}
	v := uint16(id)
	i := sort.Search(len(s.spans), func(i int) bool { return s.spans[i].hi >= v })
	return i < len(s.spans) && s.spans[i].lo <= v
}

// IDs returns the ids of the set in ascending order, as a new slice the
// caller may keep or change. For a set built from a wide vendor range this
// can be up to 65535 ints; use Has for membership tests.
func (s Set) IDs() []int {
	out := make([]int, 0, s.Len())
	for _, r := range s.spans {
		for v := int(r.lo); v <= int(r.hi); v++ {
			out = append(out, v)
		}
	}
	return out
}

// Len returns the number of ids in the set.
func (s Set) Len() int {
	n := 0
	for _, r := range s.spans {
		n += int(r.hi) - int(r.lo) + 1
	}
	return n
}

// Max returns the largest id in the set, or 0 when the set is empty.
func (s Set) Max() int {
	if len(s.spans) == 0 {
		return 0
	}
	return int(s.spans[len(s.spans)-1].hi)
}

// Equal reports whether s and o hold the same ids.
func (s Set) Equal(o Set) bool {
	if len(s.spans) != len(o.spans) {
		return false
	}
	for i := range s.spans {
		if s.spans[i] != o.spans[i] {
			return false
		}
	}
	return true
}

// String renders the set as ranges, e.g. "{1-3,7}". It is meant for test
// output and debugging.
func (s Set) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range s.spans {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(r.lo)))
		if r.hi != r.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(r.hi)))
		}
	}
	b.WriteByte('}')
	return b.String()
}

// firstCommon returns the smallest id in both s and o.
func (s Set) firstCommon(o Set) (int, bool) {
	i, j := 0, 0
	for i < len(s.spans) && j < len(o.spans) {
		a, b := s.spans[i], o.spans[j]
		switch {
		case a.hi < b.lo:
			i++
		case b.hi < a.lo:
			j++
		default:
			return int(max(a.lo, b.lo)), true
		}
	}
	return 0, false
}

// newSet builds the canonical Set of the given ranges (in any order, possibly
// overlapping). It takes ownership of rs.
func newSet(rs []span) Set {
	if len(rs) == 0 {
		return Set{}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint32(r.lo) <= uint32(last.hi)+1 {
			if r.hi > last.hi {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return Set{spans: out[:len(out):len(out)]}
}

// RestrictionType is the kind of a publisher restriction (2 bits in the
// string). Value 3 is undefined by the specification and rejected by Parse.
type RestrictionType int

const (
	// NotAllowed (0): the publisher flatly disallows the purpose for the
	// vendors listed, whatever their declarations and whatever consent or
	// legitimate interest signal the string carries for them.
	NotAllowed RestrictionType = 0
	// RequireConsent (1): a listed vendor may process for the purpose only
	// on the legal basis of consent (its VendorConsents bit and the
	// PurposesConsent bit); a legitimate interest signal does not count.
	RequireConsent RestrictionType = 1
	// RequireLegitimateInterest (2): a listed vendor may process for the
	// purpose only on the legal basis of legitimate interest; a consent
	// signal does not count.
	RequireLegitimateInterest RestrictionType = 2
)

// String returns the specification's name of the restriction type.
func (r RestrictionType) String() string {
	switch r {
	case NotAllowed:
		return "not allowed"
	case RequireConsent:
		return "require consent"
	case RequireLegitimateInterest:
		return "require legitimate interest"
	}
	return "restriction type " + strconv.Itoa(int(r))
}

// Restriction is one publisher restriction entry of the core segment: the
// publisher restricts the processing of Purpose by every vendor in Vendors in
// the way Type says.
type Restriction struct {
	Purpose int // 1..63 (6 bits in the string; 0 is rejected)
	Type    RestrictionType
	Vendors Set
}

// Publisher is the publisher TC segment (segment type 3): the publisher's own
// transparency and consent signals, for its own processing. Vendors must not
// rely on it unless they have an agreement with the publisher.
type Publisher struct {
	// PurposesConsent holds the TCF purposes (1..24) the user consented to
	// for the publisher; PurposesLITransparency the purposes for which the
	// publisher established legitimate interest transparency and the user
	// did not object.
	PurposesConsent, PurposesLITransparency Set
	// NumCustomPurposes is the number of publisher-defined custom purposes
	// (0..63); their ids are 1..NumCustomPurposes.
	NumCustomPurposes int
	// CustomPurposesConsent and CustomPurposesLITransparency are the same
	// signals for the custom purposes.
	CustomPurposesConsent, CustomPurposesLITransparency Set
}

// TCString is a decoded IAB TCF v2 transparency and consent string. See the
// package documentation for what each field means for a consent decision.
type TCString struct {
	// Version is the encoding format version; Parse accepts only 2.
	Version int
	// Created and LastUpdated are the timestamps of the string (deciseconds
	// since the Unix epoch in the string), in UTC. Since 2021 CMPs write both
	// as the day of the last update.
	Created, LastUpdated time.Time
	// CmpID and CmpVersion identify the CMP (and its version) that last
	// updated the string; ConsentScreen is that CMP's screen number.
	CmpID, CmpVersion, ConsentScreen int
	// ConsentLanguage is the two-letter ISO 639-1 code of the CMP UI, upper
	// case.
	ConsentLanguage string
	// VendorListVersion is the Global Vendor List version the string was
	// made with; PolicyVersion is TcfPolicyVersion (2 = TCF v2.0, 4 = v2.2,
	// 5 = v2.3).
	VendorListVersion, PolicyVersion int
	// IsServiceSpecific must be true for a valid string under current
	// policy (global scope was retired in 2021); UseNonStandardTexts says the
	// CMP used non-standard stack texts; PurposeOneTreatment says purpose 1
	// was NOT disclosed (jurisdiction-specific treatment, see PublisherCC).
	IsServiceSpecific, UseNonStandardTexts, PurposeOneTreatment bool
	// SpecialFeatureOptIns (ids 1..12), PurposesConsent and
	// PurposesLITransparency (ids 1..24) are the purpose-level signals.
	SpecialFeatureOptIns, PurposesConsent, PurposesLITransparency Set
	// PublisherCC is the ISO 3166-1 alpha-2 country code of the publisher's
	// legislation of reference, upper case.
	PublisherCC string
	// VendorConsents and VendorLegitimateInterests are the vendor-level
	// signals (vendor ids 1..65535).
	VendorConsents, VendorLegitimateInterests Set
	// PublisherRestrictions lists the restriction entries in string order.
	PublisherRestrictions []Restriction
	// DisclosedVendors is the disclosed vendors segment (type 1): the
	// vendors the CMP showed to the user. Nil when the segment is absent
	// (Parse rejects that for PolicyVersion 5 and later).
	DisclosedVendors *Set
	// AllowedVendors is the deprecated allowed vendors segment (type 2,
	// used only with the retired global scope / out-of-band mechanism).
	// Parse decodes it for strings of PolicyVersion below 5 so that no part
	// of the string is dropped unseen; it grants nothing. Nil when absent.
	AllowedVendors *Set
	// Publisher is the publisher TC segment (type 3); nil when absent.
	Publisher *Publisher
}

// Restriction returns the publisher restriction for a vendor and purpose, if
// any. Parse rejects strings in which one vendor carries two different
// restriction types for the same purpose, so the answer is unique.
func (t *TCString) Restriction(vendor, purpose int) (RestrictionType, bool) {
	for _, r := range t.PublisherRestrictions {
		if r.Purpose == purpose && r.Vendors.Has(vendor) {
			return r.Type, true
		}
	}
	return 0, false
}

// letters renders two 6-bit letter codes (a=0..z=25) as upper-case text.
func letters(a, b uint64) string {
	return string([]byte{byte('A' + a), byte('A' + b)})
}

func errorf(seg string, bit int, format string, args ...any) *ParseError {
	return &ParseError{Segment: seg, Bit: bit, Reason: fmt.Sprintf(format, args...)}
}
