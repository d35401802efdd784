// Package redact applies a purpose stream's field treatments to a decoded
// event: the "redact" stage of the enforcer. It is pure code: no I/O, no
// logging, and it never modifies its input (it returns a deep copy).
//
// The enforcer calls Redactor.Apply in two cases:
//
//   - ModeRedact: the subject has not granted the stream's purposes and the
//     stream's on_missing_consent is redact. Every field gets the treatment
//     the stream names for it.
//   - ModeRemoveExcluded: the subject granted the purposes but excluded
//     data categories, and the stream's excluded_categories is remove; or a
//     passed event goes to a stream whose unannotated_fields is remove. The
//     fields of an excluded category are removed, the stream's encrypt
//     rules apply (they apply on every output), the stream's
//     unannotated_fields applies (with remove: an unannotated field gets
//     its field rule, else it is removed), and everything else is kept
//     verbatim.
//
// In both modes a field whose data category one of Request.Excluded covers
// (decision.Excludes, the one rule of exclusion matching: excluding x or x.*
// covers x, every category below it, and every category above it, which may
// hold it: excluding user.contact.address.city removes a field annotated
// user.contact.address) is removed, whatever the stream's treatment for it
// says.
//
// With Request.Writer set, a field is judged by its own annotation and by
// the writer schema's annotation of the same field (decision.FieldsOf): a
// field only the writer annotates counts as annotated. When the two
// categories get different treatments in ModeRedact, the field is removed.
//
// # Treatments
//
//	action           applies to                    result
//	---------------  ----------------------------  ------------------------------------------
//	keep             any value                     unchanged
//	remove           any value                     see "What remove yields"
//	pseudonymise     string                        lowercase hex HMAC-SHA-256 under the key
//	mask             string                        jane.doe@example.com   -> j*******@example.com
//	                                               +49 151 2345-6789      -> +** *** ****-**89
//	                                               4111 1111 1111 1111    -> **** **** **** 1111
//	                                               Berlin                 -> B*****
//	truncate_ip      string holding an IP address  203.0.113.77           -> 203.0.113.0   (/24)
//	                                               2001:db8:abcd:12::1    -> 2001:db8:abcd:: (/48)
//	generalise_hour  time.Time (timestamp-millis,  truncated in UTC to the hour
//	                 timestamp-micros, date), or
//	generalise_day   an int/long number whose      truncated in UTC to the day
//	                 logical type is
//	                 timestamp-millis/micros
//	encrypt          string (no logical type)      Request.Keys.EncryptString: "cg1:" + base64url(envelope)
//	                 bytes (no logical type)       Request.Keys.EncryptBytes: the binary envelope
//
// A treatment given a value it does not apply to falls back to remove: what
// cannot be treated is not published. That covers pseudonymise and mask on
// a number, boolean, enum, bytes or fixed; truncate_ip on a string that is
// not an IP address (a port or a host name included); generalise_* on a
// string, a time of day or a plain number; encrypt on anything but a
// string or bytes (a number, boolean, enum, fixed, or a logical type that
// goavro represents natively: timestamps, dates, times, decimals; a uuid is
// a string), or when Request.Keys is nil.
//
// Strings inside unions keep their goavro wrapper ({"string": "..."}).
//
// # Encrypt
//
// An encrypt treatment encrypts under the data key of the event's subject,
// which the caller passes as Request.Keys (an Encrypter; in the enforcer a
// *shred.DataKey, whose package describes the ciphertext format and the
// keys topic). The rule's encryption says how: deterministic (equal values
// of one subject give equal ciphertexts, so joins work within the
// subject's key, and equal values are revealed as equal) or randomised
// (the default, and the mode of default_treatment: encrypt; equal values
// give unrelated ciphertexts, nothing joins). Unlike the other actions, an
// encrypt rule applies in both modes: in ModeRedact as the field's
// treatment, in ModeRemoveExcluded to every field whose first matching
// rule (policy.Stream.EncryptionFor, for any of its categories: fail
// closed) is encrypt; default_treatment: encrypt applies only in
// ModeRedact. A field of an excluded category is removed, never encrypted.
//
// Encrypt is a rewriting action like the others, with one difference:
// inside an encrypted field every value is encrypted or removed, so that an
// erasure leaves nothing of it readable. A record's fields are visited and
// inherit encrypt, also those with a category of their own, unless their
// own treatment removes them (an excluded category, a remove rule when
// redacting) or is an encrypt rule (whose mode they then take); arrays
// and maps have every item encrypted; a
// map's keys are encrypted deterministically (distinct keys stay distinct;
// no pseudonymisation key is needed, so encrypt does not make NeedsKey
// true); unions keep their wrapper. What cannot be encrypted is removed,
// and so is every field to encrypt when Request.Keys is nil (the subject
// may get no key, for example after an erasure): fail closed. An error of
// Request.Keys makes Apply fail with ErrEncrypt (wrapping it): nothing is
// published. Keys are per request and never part of a compiled program.
//
// Pseudonyms depend only on the key and the string: equal values give equal
// pseudonyms in every field, schema and stream (joins keep working, e.g. on
// subject_id), and a different key gives unrelated pseudonyms. Every
// pseudonym comes from the key given to New: there is no random or default
// key. NeedsKey says whether a policy can make a pseudonym at all (any
// rewriting action can, on a map's keys); a Redactor from NewWithoutKey,
// for a policy that cannot, fails with ErrNoKey rather than make one.
//
// Masking details: an e-mail is a string with an '@' that has characters on
// both sides; its local part keeps its first character (a one-character
// local part becomes "*") and the domain is kept. A string of digits, '+',
// spaces, dashes, dots and parentheses is a card number when it does not
// start with '+', has 13 to 19 digits and only digits, spaces and dashes
// (all digits but the last four become '*'); otherwise it is a phone number
// when it has at least 5 digits (all digits but the last two become '*').
// Any other string keeps its first character, the rest becoming '*' with the
// same length in characters; a one-character string becomes "*". Masking is
// meant for display and support, not for anonymisation.
//
// # Selection (ModeRedact)
//
// Fields are visited top-down in schema order. For each field:
//
//  1. a field whose category is excluded (Request.Excluded) is removed
//     whole;
//  2. an unannotated field inside a field whose treatment rewrites values
//     (pseudonymise, mask, truncate_ip, generalise_*, encrypt) takes a stream rule
//     for its exact path if there is one, else inherits that treatment;
//  3. otherwise the treatment is Stream.TreatmentFor(path, category): field
//     rules by exact path and category rules in file order (first match
//     wins), then DefaultTreatment for an annotated field, Unannotated
//     (keep or remove) for an unannotated one. An action this package does
//     not know counts as remove.
//
// Then:
//
//   - remove: the field is removed whole, sub-fields included;
//   - keep on a record: its fields are visited with their own categories
//     and rules (categories are not inherited), so a kept record may still
//     lose or transform some sub-fields;
//   - a rewriting treatment on a record: its fields are visited too;
//     sub-fields with a category of their own get their own treatment,
//     unannotated ones inherit the record's treatment (step 2), and fall
//     back to remove when it does not apply to them;
//   - arrays and maps: the field's treatment applies to every item (value).
//     Items that are records are visited like records, with field paths
//     "items[].sku" (arrays) and "attrs{}.x" (maps); items that are not
//     records get the array's treatment, and when it does not apply to one
//     of them the whole field is removed. A map whose treatment rewrites
//     values also gets its keys pseudonymised (keys may be personal data;
//     pseudonyms keep them distinct); a kept map keeps its keys;
//   - unions are transparent: the treatment applies to the branch the value
//     holds, keeping its wrapper; null stays null.
//
// ModeRemoveExcluded applies step 1, then the stream's encrypt rules
// (see Encrypt) and, on a stream with unannotated_fields: remove,
// Stream.TreatmentFor to unannotated fields: every other field is kept
// verbatim, and records, arrays, maps and unions
// are visited just to find the fields to treat inside them
// (items[].health_category when user.health is excluded).
//
// The envelope is not special: event_id and occurred_at are unannotated and
// follow Unannotated (kept by default; a stream with unannotated_fields:
// remove keeps them only with a field rule such as "field: event_id,
// action: keep"), and subject_id (user.id) follows the rules like any other
// field.
//
// Record keys that are not fields of the schema are left out of the result,
// and fields absent from the input stay absent (the encoder writes their
// schema default).
//
// # What remove yields
//
// The removal value always encodes with the schema:
//
//   - null, when the field's type is a union with a null branch;
//   - else the field's schema default;
//   - else the zero value of its type: "" (string), 0 (int, long, float,
//     double), false (boolean), empty bytes, a fixed of zero bytes, the first
//     enum symbol, an empty array or map, the Unix epoch for
//     timestamp-millis/micros and date, 0 for time-millis/micros, a zero
//     decimal, a record whose every field is removed the same way
//     (recursively), and the first branch's zero for a union without null.
//
// # Treated paths
//
// Result.Treated lists the paths of the fields whose value was changed or
// removed, in the path syntax of avrocodec.Schema.Annotations
// ("shipping_address.street", "items[].health_category"), sorted and without
// duplicates. It holds paths only, never values, so it can go into audit
// records.
package redact
