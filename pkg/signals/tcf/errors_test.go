package tcf

import (
	"errors"
	"strings"
	"testing"
)

// baseTC is a valid string's content used to build malformed variants.
func baseTC(policy int) *TCString {
	return &TCString{
		Version: 2, Created: day(2025, 1, 2), LastUpdated: day(2025, 1, 2),
		CmpID: 300, CmpVersion: 2, ConsentScreen: 1, ConsentLanguage: "FR",
		VendorListVersion: 120, PolicyVersion: policy, IsServiceSpecific: true,
		PurposesConsent: setOf(1, 2), PublisherCC: "FR",
	}
}

// Bit offsets of core fields, from the specification's table.
const (
	bitConsentLanguage = 6 + 36 + 36 + 12 + 12 + 6                                   // 108
	bitPublisherCC     = bitConsentLanguage + 12 + 12 + 6 + 1 + 1 + 12 + 24 + 24 + 1 // 201
	bitVendorConsents  = bitPublisherCC + 12                                         // 213
)

// core builds a core segment: the header of t, then tail writes the rest.
func core(t *TCString, tail func(w *bitWriter)) string {
	var w bitWriter
	w.coreHeader(t)
	tail(&w)
	return w.text(0)
}

// emptyVendorsAndRestrictions writes an empty consent and LI section and no
// restrictions.
func emptyVendorsAndRestrictions(w *bitWriter) {
	w.vendorsBitField(Set{}, 0)
	w.vendorsBitField(Set{}, 0)
	w.put(0, 12)
}

func disclosedSeg(s Set) string { return encodeVendorSegment(typeDisclosed, s, encOpts{}) }

func TestParseErrors(t *testing.T) {
	valid := encode(baseTC(4), encOpts{})
	if _, err := Parse(valid); err != nil {
		t.Fatalf("base string: %v", err)
	}
	pol5 := baseTC(5)
	withVersion := func(v int) string {
		tc := baseTC(4)
		tc.Version = v
		return core(tc, emptyVendorsAndRestrictions)
	}
	restrictionCore := func(rs func(w *bitWriter)) string {
		return core(baseTC(4), func(w *bitWriter) {
			w.vendorsBitField(Set{}, 0)
			w.vendorsBitField(Set{}, 0)
			rs(w)
		})
	}
	// restriction entries start after both empty vendor sections (17 bits
	// each) and NumPubRestrictions.
	const bitRestrictions = bitVendorConsents + 17 + 17 + 12
	letters := func(field int) string {
		return core(baseTC(4), func(w *bitWriter) {
			emptyVendorsAndRestrictions(w)
			w.bits[field] = 1 // first letter >= 32
		})
	}
	var pubShort bitWriter
	pubShort.put(typePublisher, 3)
	pubShort.fixed(Set{}, 48)
	pubShort.put(10, 6)
	pubShort.put(0b10101, 5)
	var pubPad bitWriter
	pubPad.put(typePublisher, 3)
	pubPad.fixed(Set{}, 48)
	pubPad.put(0, 6)
	pubPad.put(1, 1)
	var discPad bitWriter
	discPad.put(typeDisclosed, 3)
	discPad.vendorsBitField(setOf(1), 1)
	discPad.put(0, 5)
	discPad.put(1, 1)
	var unknown4 bitWriter
	unknown4.put(4, 3)
	unknown4.put(0, 21)
	var unknown7 bitWriter
	unknown7.put(7, 3)
	unknown7.put(0, 21)

	tests := []struct {
		name    string
		in      string
		segment string
		bit     int
		reason  string
	}{
		{"too long", strings.Repeat("C", MaxLength+1), "string", -1, "too long"},
		{"too long with dots", valid + "." + strings.Repeat("IAAA", MaxLength/4), "string", -1, "too long"},
		{"empty", "", "string", -1, "empty"},
		{"trailing dot", valid + ".", "string", -1, "segment 2 is empty"},
		{"leading dot", "." + valid, "string", -1, "segment 1 is empty"},
		{"two dots", valid + ".." + disclosedSeg(Set{}), "string", -1, "segment 2 is empty"},
		{"standard base64 '+' in core", valid[:3] + "+" + valid[4:], "core", 18, "character 4 is not in the base64url alphabet"},
		{"standard base64 '/' in core", valid[:10] + "/" + valid[11:], "core", 60, "character 11 is not in the base64url alphabet"},
		{"'=' padding", valid + "==", "core", 6 * len(valid), "not in the base64url alphabet"},
		{"space", valid[:5] + " " + valid[6:], "core", 30, "not in the base64url alphabet"},
		{"non-ASCII", valid[:5] + "é" + valid[7:], "core", 30, "not in the base64url alphabet"},
		{"bad base64 inside disclosed vendors", valid + ".IA+A", "disclosed vendors", 12, "character 3 is not in the base64url alphabet"},
		{"bad first character of a later segment", valid + ".*AAA", "string", -1, "segment 2: character 1 is not in the base64url alphabet"},
		{"version 1 string", "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "core", 0, "unsupported version 1"},
		{"version 0", withVersion(0), "core", 0, "unsupported version 0"},
		{"version 3", withVersion(3), "core", 0, "unsupported version 3"},
		{"publisher TC segment alone (version 24)", "YAAAAAAAAAAA", "core", 0, "unsupported version 24"},
		{"truncated core: one character", "C", "core", 6, "truncated: Created needs 36 bits, 0 left"},
		{"truncated core: half", valid[:20], "core", 120, "truncated: VendorListVersion needs 12 bits, 0 left"},
		{"truncated core: before vendor consents", valid[:35], "core", bitPublisherCC + 6, "truncated: PublisherCC needs 6 bits, 3 left"},
		{"truncated core: header only", core(baseTC(4), func(*bitWriter) {}), "core", bitVendorConsents, "truncated: vendor consent MaxVendorId needs 16 bits, 3 left"},
		{"truncated core: no NumPubRestrictions", core(baseTC(4), func(w *bitWriter) {
			w.vendorsBitField(Set{}, 0)
			w.vendorsBitField(Set{}, 0)
		}), "core", bitVendorConsents + 34, "truncated: NumPubRestrictions needs 12 bits"},
		{"bit field shorter than MaxVendorId", core(baseTC(4), func(w *bitWriter) {
			w.put(100, 16)
			w.put(0, 1)
			w.put(0, 50)
		}), "core", bitVendorConsents + 17, "truncated: vendor consent bit field needs 100 bits"},
		{"iabtcf-es issue 142: bit field does not match MaxVendorId", "CLSYjTaOngnCIAOABBENAXCMAGOAABBAAA7IA5n-m7fP6_3fbqVv6E__PoA5Aqff3aJx8tv_1967rfnQEQoAIAAQCrwkAEABAcACABIMACAAuApEVABABUSABgBCAVSAtIoACACIArYQAHACgAFgAVwBJgDcAI7AWgMAAgBiKgAgBMgFfKQAQBRkQAQA4AFiBAAoA-AEVAJlAVgAtYcACAJcAr4eABAK8OgBgFzAOmAqwgABAWyA.IFukWSQh",
			"disclosed vendors", 20, "truncated: disclosed vendors bit field needs 733 bits, 28 left"},
		{"range end before start", core(baseTC(4), func(w *bitWriter) {
			w.vendorsRange(500, []entry{{false, 1, 1}, {false, 5, 5}, {true, 40, 30}})
			w.vendorsBitField(Set{}, 0)
			w.put(0, 12)
		}), "core", bitVendorConsents + 17 + 12 + 34, "vendor consent range entry 3 ends before it starts"},
		{"range starts at vendor 0", core(baseTC(4), func(w *bitWriter) {
			w.vendorsRange(500, []entry{{true, 0, 3}})
			w.vendorsBitField(Set{}, 0)
			w.put(0, 12)
		}), "core", bitVendorConsents + 29, "vendor consent range entry 1 starts at vendor id 0"},
		{"range beyond MaxVendorId", core(baseTC(4), func(w *bitWriter) {
			w.vendorsRange(50, []entry{{true, 10, 51}})
			w.vendorsBitField(Set{}, 0)
			w.put(0, 12)
		}), "core", bitVendorConsents + 29, "vendor consent range entry 1 goes beyond MaxVendorId 50"},
		{"single id beyond MaxVendorId", core(baseTC(4), func(w *bitWriter) {
			w.vendorsRange(50, []entry{{false, 60, 60}})
			w.vendorsBitField(Set{}, 0)
			w.put(0, 12)
		}), "core", bitVendorConsents + 29, "vendor consent range entry 1 goes beyond MaxVendorId 50"},
		{"range count larger than the bits left", core(baseTC(4), func(w *bitWriter) {
			w.put(65535, 16)
			w.put(1, 1)
			w.put(4095, 12)
			w.put(0, 100)
		}), "core", bitVendorConsents + 17, "truncated: vendor consent claims 4095 range entries"},
		{"truncated range entry", core(baseTC(4), func(w *bitWriter) {
			w.put(65535, 16)
			w.put(1, 1)
			w.put(1, 12)
			w.put(1, 1)
			w.put(7, 16)
		}), "core", bitVendorConsents + 46, "truncated: vendor consent EndVendorId needs 16 bits"},
		{"legitimate interest range end before start", core(baseTC(4), func(w *bitWriter) {
			w.vendorsBitField(Set{}, 0)
			w.vendorsRange(9, []entry{{true, 9, 8}})
			w.put(0, 12)
		}), "core", bitVendorConsents + 17 + 29, "vendor legitimate interest range entry 1 ends before it starts"},
		{"restriction type 3", restrictionCore(func(w *bitWriter) {
			w.put(1, 12)
			w.put(2, 6)
			w.put(3, 2)
			w.ranges([]entry{{false, 4, 4}})
		}), "core", bitRestrictions + 6, "publisher restriction 1 has undefined restriction type 3"},
		{"restriction purpose 0", restrictionCore(func(w *bitWriter) {
			w.put(1, 12)
			w.put(0, 6)
			w.put(0, 2)
			w.ranges([]entry{{false, 4, 4}})
		}), "core", bitRestrictions, "publisher restriction 1 has purpose id 0"},
		{"restriction range end before start", restrictionCore(func(w *bitWriter) {
			w.put(1, 12)
			w.put(2, 6)
			w.put(0, 2)
			w.ranges([]entry{{true, 20, 10}})
		}), "core", bitRestrictions + 20, "publisher restriction range entry 1 ends before it starts"},
		{"restriction range starts at 0", restrictionCore(func(w *bitWriter) {
			w.put(1, 12)
			w.put(2, 6)
			w.put(0, 2)
			w.ranges([]entry{{false, 0, 0}})
		}), "core", bitRestrictions + 20, "publisher restriction range entry 1 starts at vendor id 0"},
		{"conflicting restriction types for one vendor and purpose", restrictionCore(func(w *bitWriter) {
			w.put(2, 12)
			w.put(2, 6)
			w.put(1, 2)
			w.ranges([]entry{{true, 10, 20}})
			w.put(2, 6)
			w.put(2, 2)
			w.ranges([]entry{{false, 15, 15}})
		}), "core", bitRestrictions - 12, `publisher restrictions give vendor 15 both "require consent" and "require legitimate interest" for purpose 2`},
		{"conflicting restriction types, not allowed and require consent", restrictionCore(func(w *bitWriter) {
			w.put(3, 12)
			w.put(5, 6)
			w.put(0, 2)
			w.ranges([]entry{{true, 100, 200}})
			w.put(6, 6)
			w.put(1, 2)
			w.ranges([]entry{{true, 1, 300}})
			w.put(5, 6)
			w.put(1, 2)
			w.ranges([]entry{{false, 7, 7}, {true, 150, 160}})
		}), "core", bitRestrictions - 12, `publisher restrictions give vendor 150 both "not allowed" and "require consent" for purpose 5`},
		{"restriction count larger than the bits left", restrictionCore(func(w *bitWriter) {
			w.put(4095, 12)
			w.put(0, 60)
		}), "core", bitRestrictions - 12, "truncated: 4095 publisher restrictions claimed"},
		{"non-zero padding after the core", core(baseTC(4), func(w *bitWriter) {
			emptyVendorsAndRestrictions(w)
			w.put(1, 1)
		}), "core", bitRestrictions, "non-zero bit after the last field"},
		{"non-zero padding in a later character of the core", core(baseTC(4), func(w *bitWriter) {
			emptyVendorsAndRestrictions(w)
			w.put(0, 14)
			w.put(1, 1)
		}), "core", bitRestrictions + 14, "non-zero bit after the last field"},
		{"consent language letter out of range", letters(bitConsentLanguage), "core", bitConsentLanguage, "ConsentLanguage is not two letters"},
		{"publisher country letter out of range", letters(bitPublisherCC + 6), "core", bitPublisherCC, "PublisherCC is not two letters"},
		{"unknown segment type 4", valid + "." + unknown4.text(0), "string", -1, "segment 2: unknown segment type 4"},
		{"unknown segment type 7", valid + "." + disclosedSeg(Set{}) + "." + unknown7.text(0), "string", -1, "segment 3: unknown segment type 7"},
		{"second core segment", valid + "." + valid, "string", -1, "segment 2: segment type 0 (core) after the core segment"},
		{"duplicate disclosed vendors", valid + "." + disclosedSeg(setOf(1)) + "." + disclosedSeg(setOf(2)), "disclosed vendors", 0, "segment type 1 appears twice"},
		{"duplicate publisher TC", valid + ".YAAAAAAAAAAA.YAAAAAAAAAAA", "publisher TC", 0, "segment type 3 appears twice"},
		{"duplicate allowed vendors", valid + ".QAAA.QAAA", "allowed vendors", 0, "segment type 2 appears twice"},
		{"v2.3 without disclosed vendors", encode(pol5, encOpts{}), "string", -1, "no disclosed vendors segment: it is mandatory from policy version 5"},
		{"v2.3 with only publisher TC", encode(pol5, encOpts{}) + ".YAAAAAAAAAAA", "string", -1, "no disclosed vendors segment"},
		{"policy version 6 without disclosed vendors", encode(baseTC(6), encOpts{}), "string", -1, "no disclosed vendors segment"},
		{"v2.3 with allowed vendors", encode(pol5, encOpts{}) + "." + disclosedSeg(Set{}) + ".QAAA", "string", -1, "segment 3: segment type 2 (allowed vendors) is not defined for policy version 5"},
		{"disclosed vendors truncated", valid + ".I", "disclosed vendors", 3, "truncated: disclosed vendors MaxVendorId needs 16 bits, 3 left"},
		{"disclosed vendors bit field truncated", valid + ".IAKA", "disclosed vendors", 20, "truncated: disclosed vendors bit field needs 20 bits, 4 left"},
		{"disclosed vendors non-zero padding", valid + "." + discPad.text(0), "disclosed vendors", 26, "non-zero bit after the last field"},
		{"disclosed vendors range end before start", valid + "." + func() string {
			var w bitWriter
			w.put(typeDisclosed, 3)
			w.vendorsRange(100, []entry{{true, 50, 49}})
			return w.text(0)
		}(), "disclosed vendors", 3 + 29, "disclosed vendors range entry 1 ends before it starts"},
		{"allowed vendors truncated", valid + ".QA", "allowed vendors", 3, "truncated: allowed vendors MaxVendorId needs 16 bits"},
		{"publisher TC truncated", valid + ".YAAA", "publisher TC", 3, "truncated: PubPurposesConsent needs 24 bits, 21 left"},
		{"publisher TC custom purposes truncated", valid + "." + pubShort.text(0), "publisher TC", 57, "truncated: CustomPurposesConsent needs 10 bits, 9 left"},
		{"publisher TC non-zero padding", valid + "." + pubPad.text(0), "publisher TC", 57, "non-zero bit after the last field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if got != nil {
				t.Fatalf("partial result next to the error: %+v", got)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v is not ErrMalformed", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("%T is not *ParseError", err)
			}
			if pe.Segment != tc.segment || pe.Bit != tc.bit || !strings.Contains(pe.Reason, tc.reason) {
				t.Fatalf("got %q (segment %q bit %d), want segment %q bit %d reason containing %q", err, pe.Segment, pe.Bit, tc.segment, tc.bit, tc.reason)
			}
			if len(tc.in) >= 4 && strings.Contains(err.Error(), tc.in) {
				t.Fatal("error text echoes the input")
			}
		})
	}
}

// The cases next to the errors above that the decoder accepts on purpose.
func TestParseAcceptsEdgeCases(t *testing.T) {
	pol5 := baseTC(5)
	ok := []struct {
		name  string
		in    string
		check func(*TCString) bool
	}{
		{"v2.3 with an empty disclosed vendors segment", encode(pol5, encOpts{}) + "." + disclosedSeg(Set{}),
			func(t *TCString) bool { return t.DisclosedVendors != nil && t.DisclosedVendors.Len() == 0 }},
		{"zero padding of many characters", encode(baseTC(4), encOpts{}) + "AAAAAAAA.YAAAAAAAAAAAAAAAAAA",
			func(t *TCString) bool { return t.Publisher != nil }},
		{"overlapping and unordered range entries are a union", core(baseTC(4), func(w *bitWriter) {
			w.vendorsRange(100, []entry{{true, 50, 60}, {false, 3, 3}, {true, 55, 70}, {false, 4, 4}})
			w.vendorsBitField(Set{}, 0)
			w.put(0, 12)
		}), func(t *TCString) bool { return t.VendorConsents.Equal(union(rangeSet(50, 70), rangeSet(3, 4))) }},
		{"range up to vendor 65535", core(baseTC(4), func(w *bitWriter) {
			w.vendorsRange(65535, []entry{{true, 1, 65535}})
			w.vendorsBitField(Set{}, 0)
			w.put(0, 12)
		}), func(t *TCString) bool { return t.VendorConsents.Len() == 65535 && t.VendorConsents.Has(65535) }},
		{"same vendor twice under one restriction type (iabtcf-es issue 201)", core(baseTC(4), func(w *bitWriter) {
			w.vendorsBitField(Set{}, 0)
			w.vendorsBitField(Set{}, 0)
			w.put(2, 12)
			w.put(3, 6)
			w.put(0, 2)
			w.ranges([]entry{{false, 8, 8}})
			w.put(3, 6)
			w.put(0, 2)
			w.ranges([]entry{{true, 8, 9}})
		}), func(t *TCString) bool {
			typ, ok := t.Restriction(9, 3)
			return ok && typ == NotAllowed && len(t.PublisherRestrictions) == 2
		}},
		{"different restriction types for different vendors of one purpose", core(baseTC(4), func(w *bitWriter) {
			w.vendorsBitField(Set{}, 0)
			w.vendorsBitField(Set{}, 0)
			w.put(2, 12)
			w.put(3, 6)
			w.put(1, 2)
			w.ranges([]entry{{false, 8, 8}})
			w.put(3, 6)
			w.put(2, 2)
			w.ranges([]entry{{false, 9, 9}})
		}), func(t *TCString) bool {
			a, okA := t.Restriction(8, 3)
			b, okB := t.Restriction(9, 3)
			return okA && okB && a == RequireConsent && b == RequireLegitimateInterest
		}},
		{"not service specific, policy version 2 (policy checks are the caller's)", func() string {
			tc := baseTC(2)
			tc.IsServiceSpecific = false
			return encode(tc, encOpts{})
		}(), func(t *TCString) bool { return !t.IsServiceSpecific && t.PolicyVersion == 2 }},
		{"exactly MaxLength bytes", func() string {
			s := encode(baseTC(4), encOpts{})
			return s + strings.Repeat("A", MaxLength-len(s))
		}(), func(t *TCString) bool { return t.Created.Equal(day(2025, 1, 2)) }},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(got) {
				t.Fatalf("unexpected: %+v", got)
			}
		})
	}
}
