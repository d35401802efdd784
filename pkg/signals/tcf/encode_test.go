package tcf

import (
	"math/rand/v2"
	"strings"
	"time"
)

// This file is a test-only TC string encoder, written from the
// specification independently of the decoder, so that tests can build
// valid strings with any field values and malformed strings with one
// defect at a known place.

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// bitWriter accumulates bits, one per byte.
type bitWriter struct{ bits []byte }

func (w *bitWriter) put(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bits = append(w.bits, byte(v>>uint(i))&1)
	}
}

func (w *bitWriter) flag(b bool) {
	if b {
		w.put(1, 1)
	} else {
		w.put(0, 1)
	}
}

func (w *bitWriter) len() int { return len(w.bits) }

// fixed writes n bits, bit i standing for id i+1.
func (w *bitWriter) fixed(s Set, n int) {
	for i := 1; i <= n; i++ {
		w.flag(s.Has(i))
	}
}

func (w *bitWriter) letters(s string) {
	w.put(uint64(s[0]-'A'), 6)
	w.put(uint64(s[1]-'A'), 6)
}

// text renders the bits as base64url, zero-padding to whole characters and
// then adding extraChars characters of zero bits.
func (w *bitWriter) text(extraChars int) string {
	bits := append([]byte(nil), w.bits...)
	for len(bits)%6 != 0 {
		bits = append(bits, 0)
	}
	var b strings.Builder
	for i := 0; i < len(bits); i += 6 {
		v := 0
		for j := 0; j < 6; j++ {
			v = v<<1 | int(bits[i+j])
		}
		b.WriteByte(alphabet[v])
	}
	b.WriteString(strings.Repeat("A", extraChars))
	return b.String()
}

// entry is one raw range entry, possibly malformed.
type entry struct {
	isRange bool
	lo, hi  int
}

func entriesOf(s Set) []entry {
	var out []entry
	for _, r := range s.spans {
		out = append(out, entry{r.hi != r.lo, int(r.lo), int(r.hi)})
	}
	return out
}

func (w *bitWriter) ranges(es []entry) {
	w.put(uint64(len(es)), 12)
	for _, e := range es {
		w.flag(e.isRange)
		w.put(uint64(e.lo), 16)
		if e.isRange {
			w.put(uint64(e.hi), 16)
		}
	}
}

// vendorsBitField writes a vendor section in bit field encoding.
func (w *bitWriter) vendorsBitField(s Set, maxID int) {
	w.put(uint64(maxID), 16)
	w.put(0, 1)
	w.fixed(s, maxID)
}

// vendorsRange writes a vendor section in range encoding.
func (w *bitWriter) vendorsRange(maxID int, es []entry) {
	w.put(uint64(maxID), 16)
	w.put(1, 1)
	w.ranges(es)
}

// encOpts chooses among the encodings the specification allows.
type encOpts struct {
	rnd *rand.Rand // nil: deterministic choices
}

func (o encOpts) coin() bool { return o.rnd != nil && o.rnd.IntN(2) == 0 }

func (o encOpts) extra() int {
	if o.rnd == nil {
		return 0
	}
	return o.rnd.IntN(4)
}

func (w *bitWriter) vendors(s Set, o encOpts) {
	maxID := s.Max()
	if o.rnd != nil && o.rnd.IntN(4) == 0 && maxID < 0xFFFF {
		maxID += o.rnd.IntN(0xFFFF-maxID) % 50
	}
	if o.coin() || (o.rnd == nil && 12+17*len(s.spans)*2 < maxID) || maxID > 4000 {
		w.vendorsRange(maxID, entriesOf(s))
		return
	}
	w.vendorsBitField(s, maxID)
}

func deci(t time.Time) uint64 { return uint64(t.UnixMilli() / 100) }

// coreHeader writes the core fields up to and including PublisherCC.
func (w *bitWriter) coreHeader(t *TCString) {
	w.put(uint64(t.Version), 6)
	w.put(deci(t.Created), 36)
	w.put(deci(t.LastUpdated), 36)
	w.put(uint64(t.CmpID), 12)
	w.put(uint64(t.CmpVersion), 12)
	w.put(uint64(t.ConsentScreen), 6)
	w.letters(t.ConsentLanguage)
	w.put(uint64(t.VendorListVersion), 12)
	w.put(uint64(t.PolicyVersion), 6)
	w.flag(t.IsServiceSpecific)
	w.flag(t.UseNonStandardTexts)
	w.fixed(t.SpecialFeatureOptIns, 12)
	w.fixed(t.PurposesConsent, 24)
	w.fixed(t.PurposesLITransparency, 24)
	w.flag(t.PurposeOneTreatment)
	w.letters(t.PublisherCC)
}

func (w *bitWriter) restrictions(rs []Restriction) {
	w.put(uint64(len(rs)), 12)
	for _, r := range rs {
		w.put(uint64(r.Purpose), 6)
		w.put(uint64(r.Type), 2)
		w.ranges(entriesOf(r.Vendors))
	}
}

func encodeCore(t *TCString, o encOpts) string {
	var w bitWriter
	w.coreHeader(t)
	w.vendors(t.VendorConsents, o)
	w.vendors(t.VendorLegitimateInterests, o)
	w.restrictions(t.PublisherRestrictions)
	return w.text(o.extra())
}

func encodeVendorSegment(typ int, s Set, o encOpts) string {
	var w bitWriter
	w.put(uint64(typ), 3)
	w.vendors(s, o)
	return w.text(o.extra())
}

func encodePublisher(p *Publisher, o encOpts) string {
	var w bitWriter
	w.put(typePublisher, 3)
	w.fixed(p.PurposesConsent, 24)
	w.fixed(p.PurposesLITransparency, 24)
	w.put(uint64(p.NumCustomPurposes), 6)
	w.fixed(p.CustomPurposesConsent, p.NumCustomPurposes)
	w.fixed(p.CustomPurposesLITransparency, p.NumCustomPurposes)
	return w.text(o.extra())
}

// encode renders t as a TC string. With a random source it picks bit field
// or range encodings, MaxVendorId above the largest id, extra zero padding
// and the order of the segments after the core at random.
func encode(t *TCString, o encOpts) string {
	segs := []string{}
	if t.DisclosedVendors != nil {
		segs = append(segs, encodeVendorSegment(typeDisclosed, *t.DisclosedVendors, o))
	}
	if t.AllowedVendors != nil {
		segs = append(segs, encodeVendorSegment(typeAllowed, *t.AllowedVendors, o))
	}
	if t.Publisher != nil {
		segs = append(segs, encodePublisher(t.Publisher, o))
	}
	if o.rnd != nil {
		o.rnd.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
	}
	return strings.Join(append([]string{encodeCore(t, o)}, segs...), ".")
}

// setOf builds a Set of the given ids (test helper).
func setOf(ids ...int) Set {
	rs := make([]span, 0, len(ids))
	for _, id := range ids {
		rs = append(rs, span{uint16(id), uint16(id)})
	}
	return newSet(rs)
}

// rangeSet builds the Set lo..hi.
func rangeSet(lo, hi int) Set { return newSet([]span{{uint16(lo), uint16(hi)}}) }

func union(a, b Set) Set { return newSet(append(append([]span(nil), a.spans...), b.spans...)) }

// randomSet returns a random set of ids in 1..max: sparse, dense or runs.
func randomSet(rnd *rand.Rand, max int) Set {
	if max == 0 {
		return Set{}
	}
	var rs []span
	switch rnd.IntN(4) {
	case 0:
		return Set{}
	case 1: // sparse singles
		for range rnd.IntN(20) {
			v := 1 + rnd.IntN(max)
			rs = append(rs, span{uint16(v), uint16(v)})
		}
	case 2: // runs
		for range rnd.IntN(8) {
			lo := 1 + rnd.IntN(max)
			hi := lo + rnd.IntN(max-lo+1)
			rs = append(rs, span{uint16(lo), uint16(hi)})
		}
	default: // dense over a small prefix
		n := 1 + rnd.IntN(min(max, 300))
		for i := 1; i <= n; i++ {
			if rnd.IntN(3) == 0 {
				rs = append(rs, span{uint16(i), uint16(i)})
			}
		}
	}
	return newSet(rs)
}

func randomLetters(rnd *rand.Rand) string {
	return string([]byte{byte('A' + rnd.IntN(26)), byte('A' + rnd.IntN(26))})
}

// randomTC returns a random valid TCString (as Parse would return it).
func randomTC(rnd *rand.Rand) *TCString {
	maxVendor := []int{0, 10, 1000, 65535}[rnd.IntN(4)]
	t := &TCString{
		Version:                   2,
		Created:                   time.UnixMilli(int64(rnd.Uint64N(1<<36)) * 100).UTC(),
		LastUpdated:               time.UnixMilli(int64(rnd.Uint64N(1<<36)) * 100).UTC(),
		CmpID:                     rnd.IntN(1 << 12),
		CmpVersion:                rnd.IntN(1 << 12),
		ConsentScreen:             rnd.IntN(1 << 6),
		ConsentLanguage:           randomLetters(rnd),
		VendorListVersion:         rnd.IntN(1 << 12),
		PolicyVersion:             rnd.IntN(1 << 6),
		IsServiceSpecific:         rnd.IntN(2) == 0,
		UseNonStandardTexts:       rnd.IntN(2) == 0,
		PurposeOneTreatment:       rnd.IntN(2) == 0,
		SpecialFeatureOptIns:      randomSet(rnd, 12),
		PurposesConsent:           randomSet(rnd, 24),
		PurposesLITransparency:    randomSet(rnd, 24),
		PublisherCC:               randomLetters(rnd),
		VendorConsents:            randomSet(rnd, maxVendor),
		VendorLegitimateInterests: randomSet(rnd, maxVendor),
	}
	if n := rnd.IntN(4); n > 0 {
		for i := 0; i < n; i++ {
			// distinct purposes so that no vendor gets two types for one purpose
			r := Restriction{Purpose: 1 + i*7 + rnd.IntN(7), Type: RestrictionType(rnd.IntN(3)), Vendors: randomSet(rnd, 1+rnd.IntN(65535))}
			t.PublisherRestrictions = append(t.PublisherRestrictions, r)
		}
	}
	if t.PolicyVersion >= 5 || rnd.IntN(2) == 0 {
		d := randomSet(rnd, maxVendor)
		t.DisclosedVendors = &d
	}
	if t.PolicyVersion < 5 && rnd.IntN(4) == 0 {
		a := randomSet(rnd, maxVendor)
		t.AllowedVendors = &a
	}
	if rnd.IntN(2) == 0 {
		n := rnd.IntN(64)
		t.Publisher = &Publisher{
			PurposesConsent:              randomSet(rnd, 24),
			PurposesLITransparency:       randomSet(rnd, 24),
			NumCustomPurposes:            n,
			CustomPurposesConsent:        randomSet(rnd, n),
			CustomPurposesLITransparency: randomSet(rnd, n),
		}
	}
	return t
}
