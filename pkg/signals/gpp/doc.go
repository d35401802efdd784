// Package gpp decodes IAB Global Privacy Platform (GPP) strings, version 1,
// and US Privacy (USP, "1YNN") strings, and holds the catalogue of the
// fields a consent policy may map.
//
// It imports nothing of this repository and only the standard library.
// Sources: InteractiveAdvertisingBureau/Global-Privacy-Platform (Core/Consent
// String Specification.md, Sections/**) and the reference implementation
// IABTechLab/iabgpp-es, whose test vectors are the package's table tests.
//
// # What is decoded
//
// A GPP string is a header and discrete sections joined by '~'. The header
// (base64url, then bits) is Type Int(6) = 3, Version Int(6) = 1 and the
// section ids as a Range(Fibonacci): an Int(12) count, then per item a
// Boolean (single id or group), the Fibonacci-coded offset from the last id
// seen and, for a group, its Fibonacci-coded length. There must be exactly
// one '~' section per id, in the header's (ascending) order.
//
// Each section is then decoded by its id:
//
//   - 2 tcfeuv2: kept as text in Section.TCF (a TC string: decode it with
//     package tcf). Only its characters are checked here.
//   - 6 uspv1: the four-character USP string (ParseUSP).
//   - 7 usnat, 8 usca, 9 usva, 10 usco, 11 usut, 12 usct, 13 usfl, 14 usmt,
//     15 usor, 16 ustx, 17 usde, 18 usia, 19 usne, 20 usnh, 21 usnj, 22 ustn,
//     23 usmn: a core segment that starts with Version Int(6), then the
//     section's fields for that version; optionally, after '.', the GPC
//     subsection (SubsectionType Int(2) = 1, Gpc Boolean) for the sections
//     whose spec defines one (not usva, usut, usfl). The version is read
//     first and decides the layout: usnat version 1 has SensitiveDataProcessing
//     N-Bitfield(2,12) and KnownChildSensitiveDataConsents N-Bitfield(2,2),
//     version 2 has 16 and 3 entries; every state section has version 1 only.
//   - 24 usmd, 25 usin, 26 usky, 27 usri: the MSPA-versioned layout that
//     iabgpp-es implements: no Version field (the section version is 1), the
//     core starts with MspaVersion Int(6), MspaCoveredTransaction, MspaMode;
//     after '.', usmd has the GPC subsection and usin, usky, usri the
//     sensitive data consents subsection (SensitiveDataProcessing
//     N-Bitfield(2,8), no type field).
//   - any other id (1 tcfeuv1, 4, 5 tcfcav1, later registrations): kept
//     undecoded in Section.Raw with Name "", after a check that it holds only
//     URL-safe characters.
//
// # Fields and their meaning
//
// Section.Fields holds the mappable fields, named as FieldNames lists them
// (snake_case of the spec's names, "name.N" for the N-th entry of a list,
// 1-based). A field's Kind (FieldKind) says how to read its value:
//
//   - OptOut (sale_opt_out, sharing_opt_out, targeted_advertising_opt_out,
//     and sensitive_data_processing.N of usca, usut and usia, whose specs
//     define it as an opt-out): 0 not applicable, 1 opted out, 2 did not
//     opt out.
//   - Consent (sensitive_data_processing.N elsewhere,
//     known_child_sensitive_data_consents[.N], personal_data_consents,
//     additional_data_processing_consent): 0 not applicable, 1 no consent,
//     2 consent.
//   - Flag ("gpc", the GPC subsection's bit): 1 the GPC signal was on (the
//     consumer opted out), 0 it was off. Section.GPC carries the same bit as
//     a *bool, nil when the subsection is absent.
//
// uspv1's only mappable field is sale_opt_out (OptOutSale 'Y' = 1, 'N' = 2,
// '-' = 0). A field the string does not carry (a list entry the section's
// version lacks, an absent subsection) is absent from Fields, never 0.
//
// Section.Notices holds the other fields (the notices, MspaCoveredTransaction,
// MspaOptOutOptionMode, MspaServiceProviderMode, MspaMode, MspaVersion; for
// uspv1 "notice" and "lspa_covered"): not mappable, kept for the audit.
//
// # What is rejected
//
// Parse returns the whole result or nil and a *ParseError (errors.Is(err,
// ErrMalformed)) naming the section, the bit offset inside the segment
// when it applies, and the reason; errors never contain the input. Rejected:
//
//   - input over 64 KiB (before decoding), an empty string;
//   - characters outside base64url ('A'-'Z', 'a'-'z', '0'-'9', '-', '_') in
//     the header and in bit-encoded segments: '+', '/' and '=' padding too.
//     The spec's table shows the standard alphabet but the spec calls the
//     encoding URL-safe and modified, and iabgpp-es accepts only base64url;
//   - a header whose type is not 3 or version not 1, a truncated field, a
//     Fibonacci code without its terminating "11" or longer than 31 bits, a
//     header listing more or fewer ids than the string has sections, an
//     empty section or segment;
//   - after the last field of a segment, anything but zero padding up to
//     the next multiple of 6 bits (the spec) or of 8 then 6 bits (what
//     iabgpp-es writes): extra characters and non-zero padding bits are
//     errors;
//   - an unsupported section version ("unsupported version N"): a string
//     whose version and length disagree is not decoded by its length. This
//     differs from iabgpp-es, which decodes a usnat core of 60 or 66 bits
//     with the version 1 layout whatever its version says: "CVQqAAAACg"
//     (version 2, v1 layout) is truncated for us, "BVVVkkkkkpFY" (version
//     1, v2 layout) has trailing data;
//   - values the spec does not define: 3 in any 2-bit field, 0 in
//     MspaCoveredTransaction (1 yes, 2 no);
//   - a subsection on a section without subsections, more than one
//     subsection, a GPC subsection whose type is not 1;
//   - for usmd, usin, usky, usri, a core whose first 6 bits equal the
//     section id: that is the section-header form (SectionID, Version,
//     SubSections) of the public-comment specs, which no implementation
//     writes yet; it is refused rather than read as fields;
//   - USP strings other than '1' followed by three of 'Y', 'N', '-'
//     (lower case, version 2 and other lengths included).
//
// # Spec points decided here
//
// The Tennessee spec names KnownChildSensitiveDataConsent in the singular and
// omits MspaCoveredTransaction from its table; like iabgpp-es the package
// uses the plural name and decodes MspaCoveredTransaction, as every other
// state. Montana's first notice is SharingNotice in its spec and here.
package gpp
