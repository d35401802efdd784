package tcf

import (
	"fmt"
	"strings"
	"time"
)

// Segment types (3 bits at the start of every segment after the core).
const (
	typeCore      = 0
	typeDisclosed = 1
	typeAllowed   = 2
	typePublisher = 3
)

// b64 maps a base64url character to its 6-bit value, or -1.
var b64 = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// reader reads big-endian bit fields from the 6-bit values of one segment.
type reader struct {
	seg string
	six []byte
	pos int
	n   int
}

// decode64 turns a segment's base64url text into its 6-bit values.
func decode64(seg, text string) ([]byte, error) {
	six := make([]byte, len(text))
	for i := 0; i < len(text); i++ {
		v := b64[text[i]]
		if v < 0 {
			return nil, errorf(seg, 6*i, "character %d is not in the base64url alphabet", i+1)
		}
		six[i] = byte(v)
	}
	return six, nil
}

func newReader(seg string, six []byte) *reader {
	return &reader{seg: seg, six: six, n: 6 * len(six)}
}

func (r *reader) left() int { return r.n - r.pos }

func (r *reader) bitAt(i int) uint64 {
	return uint64(r.six[i/6]>>(5-uint(i%6))) & 1
}

// read reads an n-bit unsigned field (n <= 36) named field.
func (r *reader) read(n int, field string) (uint64, error) {
	if n > r.left() {
		return 0, errorf(r.seg, r.pos, "truncated: %s needs %d bits, %d left", field, n, r.left())
	}
	var v uint64
	for i := 0; i < n; i++ {
		v = v<<1 | r.bitAt(r.pos+i)
	}
	r.pos += n
	return v, nil
}

func (r *reader) readBool(field string) (bool, error) {
	v, err := r.read(1, field)
	return v == 1, err
}

// readFixed reads an n-bit field in which bit i (from the left) stands for
// id i+1.
func (r *reader) readFixed(n int, field string) (Set, error) {
	if n > r.left() {
		return Set{}, errorf(r.seg, r.pos, "truncated: %s needs %d bits, %d left", field, n, r.left())
	}
	var rs []span
	for i := 0; i < n; i++ {
		if r.bitAt(r.pos+i) == 0 {
			continue
		}
		id := uint16(i + 1)
		if k := len(rs) - 1; k >= 0 && rs[k].hi+1 == id {
			rs[k].hi = id
		} else {
			rs = append(rs, span{id, id})
		}
	}
	r.pos += n
	return Set{spans: rs}, nil
}

// readLetters reads two 6-bit letters (a=0..z=25).
func (r *reader) readLetters(field string) (string, error) {
	at := r.pos
	a, err := r.read(6, field)
	if err != nil {
		return "", err
	}
	b, err := r.read(6, field)
	if err != nil {
		return "", err
	}
	if a > 25 || b > 25 {
		return "", errorf(r.seg, at, "%s is not two letters", field)
	}
	return letters(a, b), nil
}

// checkPadding accepts what is left after the last field only if every bit
// of it is zero (the padding an encoder adds to fill the last characters).
func (r *reader) checkPadding() error {
	for i := r.pos; i < r.n; i++ {
		if r.bitAt(i) != 0 {
			return errorf(r.seg, i, "non-zero bit after the last field")
		}
	}
	return nil
}

// rangeEntryBits is the smallest size of a range entry (IsARange and one
// vendor id).
const rangeEntryBits = 17

// readRanges reads NumEntries (12 bits) and that many range entries. maxID
// bounds the vendor ids when it is >= 0 (the vendor sections); publisher
// restrictions pass -1 (ids are bounded only by their 16 bits).
func (r *reader) readRanges(what string, maxID int) (Set, error) {
	at := r.pos
	num, err := r.read(12, what+" NumEntries")
	if err != nil {
		return Set{}, err
	}
	if int(num)*rangeEntryBits > r.left() {
		return Set{}, errorf(r.seg, at, "truncated: %s claims %d range entries, %d bits left", what, num, r.left())
	}
	rs := make([]span, 0, num)
	for i := 1; i <= int(num); i++ {
		entry := r.pos
		isRange, err := r.readBool(what + " IsARange")
		if err != nil {
			return Set{}, err
		}
		lo, err := r.read(16, what+" StartOrOnlyVendorId")
		if err != nil {
			return Set{}, err
		}
		hi := lo
		if isRange {
			if hi, err = r.read(16, what+" EndVendorId"); err != nil {
				return Set{}, err
			}
		}
		switch {
		case lo == 0:
			return Set{}, errorf(r.seg, entry, "%s range entry %d starts at vendor id 0", what, i)
		case hi < lo:
			return Set{}, errorf(r.seg, entry, "%s range entry %d ends before it starts", what, i)
		case maxID >= 0 && hi > uint64(maxID):
			return Set{}, errorf(r.seg, entry, "%s range entry %d goes beyond MaxVendorId %d", what, i, maxID)
		}
		rs = append(rs, span{uint16(lo), uint16(hi)})
	}
	return newSet(rs), nil
}

// readVendors reads a vendor section: MaxVendorId, IsRangeEncoding and a bit
// field or range section.
func (r *reader) readVendors(what string) (Set, error) {
	maxID, err := r.read(16, what+" MaxVendorId")
	if err != nil {
		return Set{}, err
	}
	isRange, err := r.readBool(what + " IsRangeEncoding")
	if err != nil {
		return Set{}, err
	}
	if isRange {
		return r.readRanges(what, int(maxID))
	}
	return r.readFixed(int(maxID), what+" bit field")
}

// deciseconds converts a 36-bit decisecond timestamp to UTC time.
func deciseconds(v uint64) time.Time {
	return time.UnixMilli(int64(v) * 100).UTC()
}

// Parse decodes a TC string: the core segment and every segment after it
// (disclosed vendors, the deprecated allowed vendors, publisher TC). It
// returns the whole decoded string or, for any defect, nil and a *ParseError
// that matches ErrMalformed; see the package documentation for what is
// rejected.
func Parse(s string) (*TCString, error) {
	if len(s) > MaxLength {
		return nil, errorf(segString, -1, "too long: %d bytes, at most %d", len(s), MaxLength)
	}
	if s == "" {
		return nil, errorf(segString, -1, "empty")
	}
	parts := strings.Split(s, ".")
	for i, p := range parts {
		if p == "" {
			return nil, errorf(segString, -1, "segment %d is empty", i+1)
		}
	}
	six, err := decode64(segCore, parts[0])
	if err != nil {
		return nil, err
	}
	t, err := parseCore(newReader(segCore, six))
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for i, p := range parts[1:] {
		n := i + 2
		first := b64[p[0]]
		if first < 0 {
			return nil, errorf(segString, -1, "segment %d: character 1 is not in the base64url alphabet", n)
		}
		typ := int(first >> 3)
		var name string
		switch typ {
		case typeDisclosed:
			name = segDisclosed
		case typeAllowed:
			name = segAllowed
			if t.PolicyVersion >= 5 {
				return nil, errorf(segString, -1, "segment %d: segment type 2 (allowed vendors) is not defined for policy version %d", n, t.PolicyVersion)
			}
		case typePublisher:
			name = segPublisher
		case typeCore:
			return nil, errorf(segString, -1, "segment %d: segment type 0 (core) after the core segment", n)
		default:
			return nil, errorf(segString, -1, "segment %d: unknown segment type %d", n, typ)
		}
		if seen[typ] {
			return nil, errorf(name, 0, "segment type %d appears twice", typ)
		}
		seen[typ] = true
		six, err := decode64(name, p)
		if err != nil {
			return nil, err
		}
		r := newReader(name, six)
		r.pos = 3
		switch typ {
		case typeDisclosed, typeAllowed:
			set, err := r.readVendors(name)
			if err != nil {
				return nil, err
			}
			if err := r.checkPadding(); err != nil {
				return nil, err
			}
			if typ == typeDisclosed {
				t.DisclosedVendors = &set
			} else {
				t.AllowedVendors = &set
			}
		case typePublisher:
			pub, err := parsePublisher(r)
			if err != nil {
				return nil, err
			}
			t.Publisher = pub
		}
	}
	if t.PolicyVersion >= 5 && t.DisclosedVendors == nil {
		return nil, errorf(segString, -1, "no disclosed vendors segment: it is mandatory from policy version 5 (TCF v2.3), this string has %d", t.PolicyVersion)
	}
	return t, nil
}

// parseCore decodes the core segment, padding included.
func parseCore(r *reader) (*TCString, error) {
	t := &TCString{}
	var err error
	u := func(n int, field string) int {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = r.read(n, field)
		return int(v)
	}
	ver := u(6, "Version")
	if err != nil {
		return nil, err
	}
	if ver != 2 {
		return nil, errorf(segCore, 0, "unsupported version %d", ver)
	}
	t.Version = ver
	created := u(36, "Created")
	updated := u(36, "LastUpdated")
	t.CmpID = u(12, "CmpId")
	t.CmpVersion = u(12, "CmpVersion")
	t.ConsentScreen = u(6, "ConsentScreen")
	if err != nil {
		return nil, err
	}
	t.Created, t.LastUpdated = deciseconds(uint64(created)), deciseconds(uint64(updated))
	if t.ConsentLanguage, err = r.readLetters("ConsentLanguage"); err != nil {
		return nil, err
	}
	t.VendorListVersion = u(12, "VendorListVersion")
	t.PolicyVersion = u(6, "TcfPolicyVersion")
	t.IsServiceSpecific = u(1, "IsServiceSpecific") == 1
	t.UseNonStandardTexts = u(1, "UseNonStandardTexts") == 1
	if err != nil {
		return nil, err
	}
	if t.SpecialFeatureOptIns, err = r.readFixed(12, "SpecialFeatureOptIns"); err != nil {
		return nil, err
	}
	if t.PurposesConsent, err = r.readFixed(24, "PurposesConsent"); err != nil {
		return nil, err
	}
	if t.PurposesLITransparency, err = r.readFixed(24, "PurposesLITransparency"); err != nil {
		return nil, err
	}
	t.PurposeOneTreatment = u(1, "PurposeOneTreatment") == 1
	if err != nil {
		return nil, err
	}
	if t.PublisherCC, err = r.readLetters("PublisherCC"); err != nil {
		return nil, err
	}
	if t.VendorConsents, err = r.readVendors("vendor consent"); err != nil {
		return nil, err
	}
	if t.VendorLegitimateInterests, err = r.readVendors("vendor legitimate interest"); err != nil {
		return nil, err
	}
	if t.PublisherRestrictions, err = readRestrictions(r); err != nil {
		return nil, err
	}
	if err := r.checkPadding(); err != nil {
		return nil, err
	}
	return t, nil
}

// restrictionBits is the smallest size of a publisher restriction entry.
const restrictionBits = 6 + 2 + 12

func readRestrictions(r *reader) ([]Restriction, error) {
	at := r.pos
	num, err := r.read(12, "NumPubRestrictions")
	if err != nil {
		return nil, err
	}
	if num == 0 {
		return nil, nil
	}
	if int(num)*restrictionBits > r.left() {
		return nil, errorf(r.seg, at, "truncated: %d publisher restrictions claimed, %d bits left", num, r.left())
	}
	out := make([]Restriction, 0, num)
	for i := 1; i <= int(num); i++ {
		entry := r.pos
		p, err := r.read(6, "restriction PurposeId")
		if err != nil {
			return nil, err
		}
		typ, err := r.read(2, "RestrictionType")
		if err != nil {
			return nil, err
		}
		if p == 0 {
			return nil, errorf(r.seg, entry, "publisher restriction %d has purpose id 0", i)
		}
		if typ == 3 {
			return nil, errorf(r.seg, entry+6, "publisher restriction %d has undefined restriction type 3", i)
		}
		vendors, err := r.readRanges("publisher restriction", -1)
		if err != nil {
			return nil, err
		}
		out = append(out, Restriction{Purpose: int(p), Type: RestrictionType(typ), Vendors: vendors})
	}
	if err := checkConflicts(out); err != nil {
		err.Segment, err.Bit = r.seg, at
		return nil, err
	}
	return out, nil
}

// checkConflicts rejects restrictions that give one vendor two different
// restriction types for the same purpose: the string would not say which
// legal basis applies. It costs O(n log n) in the number of ranges, however
// the entries are arranged.
func checkConflicts(rs []Restriction) *ParseError {
	var byKey [64][3][]span // purpose, type -> ranges
	for _, r := range rs {
		byKey[r.Purpose][r.Type] = append(byKey[r.Purpose][r.Type], r.Vendors.spans...)
	}
	for p := range byKey {
		var union [3]Set
		n := 0
		for typ := range byKey[p] {
			if len(byKey[p][typ]) > 0 {
				union[typ] = newSet(byKey[p][typ])
				n++
			}
		}
		if n < 2 {
			continue
		}
		for a := 0; a < 3; a++ {
			for b := a + 1; b < 3; b++ {
				if v, ok := union[a].firstCommon(union[b]); ok {
					return &ParseError{Reason: fmt.Sprintf("publisher restrictions give vendor %d both %q and %q for purpose %d", v, RestrictionType(a), RestrictionType(b), p)}
				}
			}
		}
	}
	return nil
}

// parsePublisher decodes a publisher TC segment after its segment type.
func parsePublisher(r *reader) (*Publisher, error) {
	p := &Publisher{}
	var err error
	if p.PurposesConsent, err = r.readFixed(24, "PubPurposesConsent"); err != nil {
		return nil, err
	}
	if p.PurposesLITransparency, err = r.readFixed(24, "PubPurposesLITransparency"); err != nil {
		return nil, err
	}
	n, err := r.read(6, "NumCustomPurposes")
	if err != nil {
		return nil, err
	}
	p.NumCustomPurposes = int(n)
	if p.CustomPurposesConsent, err = r.readFixed(int(n), "CustomPurposesConsent"); err != nil {
		return nil, err
	}
	if p.CustomPurposesLITransparency, err = r.readFixed(int(n), "CustomPurposesLITransparency"); err != nil {
		return nil, err
	}
	if err := r.checkPadding(); err != nil {
		return nil, err
	}
	return p, nil
}
