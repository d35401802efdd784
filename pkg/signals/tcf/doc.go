// Package tcf decodes IAB Europe Transparency and Consent Framework (TCF)
// v2 TC strings, as written under TCF policy v2.2 and v2.3, into a TCString.
// It is a pure decoder: it imports only the standard library, makes no
// consent decision itself, and either returns the whole string decoded or an
// error (never a partly filled value).
//
// # What is decoded
//
// A TC string is base64url text in segments joined by '.'. The first is the
// core segment; each later segment starts with a 3-bit segment type and may
// come in any order. Parse decodes every segment:
//
//   - the core segment (no segment type; its first 6 bits are Version = 2):
//     metadata (Created, LastUpdated, CmpID, CmpVersion, ConsentScreen,
//     ConsentLanguage, VendorListVersion, PolicyVersion, IsServiceSpecific,
//     UseNonStandardTexts), SpecialFeatureOptIns, PurposesConsent,
//     PurposesLITransparency, PurposeOneTreatment, PublisherCC, the vendor
//     consent and vendor legitimate interest sections (each in bit field or
//     range encoding), and the publisher restrictions;
//   - the disclosed vendors segment (type 1) into DisclosedVendors;
//   - the allowed vendors segment (type 2, deprecated) into AllowedVendors;
//   - the publisher TC segment (type 3) into Publisher.
//
// Purpose, special feature, custom purpose and vendor lists are Sets of ids
// (bit i of a field is id i+1, as the specification numbers them).
//
// # What the fields mean for a consent decision
//
// The string records signals; turning them into a decision for a vendor and
// a purpose needs the vendor's declarations in the Global Vendor List (which
// purposes it declares on consent, on legitimate interest, and which of those
// are flexible). In outline, per the specification:
//
//   - PurposesConsent: the user consented to the purpose. Processing on the
//     legal basis of consent needs both this bit and the vendor's bit in
//     VendorConsents.
//   - PurposesLITransparency: the CMP established transparency for the
//     purpose on the legal basis of legitimate interest and the user did not
//     object (exercise the "right to object"). This is not consent. Processing
//     on legitimate interest needs this bit and the vendor's bit in
//     VendorLegitimateInterests. Since TCF v2.2 legitimate interest is not
//     permitted for purposes 3, 4, 5 and 6 (and purpose 1 is consent only), so
//     a set bit for those purposes must not be read as a legal basis; the
//     decoder reports the bits as written.
//   - SpecialFeatureOptIns: the user opted in to the special feature (for
//     example precise geolocation). Special features need this opt-in in
//     addition to the purpose signals; there is no legitimate interest for
//     them.
//   - VendorConsents / VendorLegitimateInterests: the per-vendor halves of the
//     two legal bases above. A vendor that declares only special purposes
//     has its legitimate interest bit set when the CMP disclosed it.
//   - PublisherRestrictions (Restriction for one vendor and purpose): the
//     publisher overrides the vendor's declaration for a purpose.
//     NotAllowed forbids the purpose for the vendor whatever else the string
//     says. RequireConsent makes consent the only usable legal basis (a
//     legitimate interest signal does not count); RequireLegitimateInterest
//     makes legitimate interest the only one. For a vendor whose purpose is
//     not flexible, a restriction to the other legal basis than the one it
//     declared, or any restriction of type 1 or 2 for a purpose it did not
//     declare, means it must not process for that purpose.
//   - PurposeOneTreatment and PublisherCC: when PurposeOneTreatment is set,
//     purpose 1 was not disclosed to the user (a jurisdiction where
//     consent for storage is not required); PublisherCC names that
//     jurisdiction. A zero PurposesConsent bit for purpose 1 then does not
//     mean refusal, but neither is it consent.
//   - DisclosedVendors: the vendors the CMP showed to the user. Mandatory
//     from TCF v2.3 (PolicyVersion 5): a vendor that declares special
//     purposes may rely on them only if it is in this set; a vendor absent
//     from it was not presented to the user.
//   - AllowedVendors: only meaningful for the retired global scope /
//     out-of-band mechanism; it never grants anything.
//   - Publisher (publisher TC): the user's consent and legitimate interest
//     signals for the publisher's own processing, for the standard purposes
//     and for the publisher's custom purposes (ids 1..NumCustomPurposes).
//     Vendors must not use it unless they have an agreement with the
//     publisher.
//   - IsServiceSpecific: the specification says a string with the value 0
//     is invalid (global scope strings are invalid since September 2021);
//     PolicyVersion below 4 marks a string from before TCF v2.2, which the
//     policy treats as invalid since 30 September 2023 (with a transition
//     for strings made before). The decoder reports both as written; the
//     caller decides (fail closed: treat such strings as carrying no
//     consent).
//   - Created and LastUpdated: since 2021 both are the day of the last
//     update (UTC midnight), for re-asking the user after 13 months.
//
// # What Parse rejects
//
// Every rejection is a *ParseError matching ErrMalformed, naming the segment
// ("core", "disclosed vendors", "allowed vendors", "publisher TC" or "string"),
// the bit offset inside the segment (or -1) and the reason. The error text
// never contains the input. Parse rejects:
//
//   - input longer than MaxLength (64 KiB), before decoding; an empty string;
//     an empty segment (a leading, trailing or doubled '.');
//   - any character outside the base64url alphabet A-Z a-z 0-9 '-' '_': the
//     specification prescribes URL-safe base64 and the reference
//     implementation (iabtcf-es) accepts only that alphabet, so the standard
//     alphabet's '+' and '/', '=' padding and white space are errors;
//   - a core Version other than 2 ("unsupported version N"), including TCF
//     v1 strings and strings that start with a non-core segment;
//   - a field cut off by the end of its segment ("truncated"), including a
//     bit field shorter than its MaxVendorId and a range or restriction count
//     larger than the bits left could hold (checked before allocating);
//   - a range entry that starts at vendor id 0, ends before it starts, or
//     (in the vendor consent, vendor legitimate interest, disclosed and
//     allowed vendors sections) goes beyond the section's MaxVendorId;
//   - a publisher restriction with purpose id 0 or restriction type 3
//     (undefined), and restrictions that give one vendor two different types
//     for the same purpose (the string would not say which legal basis
//     applies). The same vendor listed twice under the same type is
//     accepted, as the reference implementation does;
//   - a ConsentLanguage or PublisherCC letter outside a..z (values 26..63);
//   - a non-zero bit after the last field of a segment: encoders pad the
//     last characters with zero bits (iabtcf-es pads to 24 bits, published
//     examples carry more zero characters), so zero padding of any length is
//     accepted and anything else is not;
//   - a segment type other than 1, 2 and 3 after the core (0 is a second
//     core, 4..7 are undefined), and a segment type seen twice;
//   - for PolicyVersion 5 (TCF v2.3) and later: a string without a disclosed
//     vendors segment, and an allowed vendors segment (type 2 is not defined
//     by the v2.3 specification). For earlier policy versions both are
//     optional and type 2 is decoded into AllowedVendors.
//
// Parse accepts range entries that overlap or come in any order (the set is
// their union) and a MaxVendorId larger than the largest id encoded. Memory
// use is proportional to the input, not to the counts it claims: Sets are
// stored as ranges.
package tcf
