// Package policy reads the consent policy file: the data engineer's single
// file that declares which purposes exist and what goes to which purpose
// stream (compliant output topic), and how fields are treated there.
//
// The file format is documented, with a commented example, in README.md next
// to this file; testdata/example.yaml is the policy the dev stack runs with.
//
// Parse and Load validate the whole file and report every problem at once,
// each as an *Error located by line and column ("policy.yaml:12:7: unknown
// key on_mising_consent in stream; did you mean on_missing_consent?"), so a
// bad policy stops a service at start-up with a message that says what to
// fix. A *Policy that Parse returns is valid and immutable: it is safe for
// concurrent use, and callers must not modify its slices.
//
// The policy is pure data: deciding (is this event allowed for this purpose
// under this consent?) and redacting (apply the treatments) are done by other
// packages that take a *Policy.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
)

// Legal bases a purpose may accept. They are the legal_basis values of the
// consent change record.
const (
	LegalBasisConsent            = "CONSENT"
	LegalBasisLegitimateInterest = "LEGITIMATE_INTEREST"
	LegalBasisContract           = "CONTRACT"
)

// LegalBases lists every legal basis a policy may name, in documentation
// order.
var LegalBases = []string{LegalBasisConsent, LegalBasisLegitimateInterest, LegalBasisContract}

// OnMissing says what a stream does with an event whose subject has not
// granted every purpose of the stream.
type OnMissing string

const (
	// OnMissingDrop leaves the event off the stream (the default).
	OnMissingDrop OnMissing = "drop"
	// OnMissingRedact publishes a redacted copy: every annotated field gets
	// the treatment that Stream.TreatmentFor names.
	OnMissingRedact OnMissing = "redact"
)

// Values of Stream.Unannotated: what happens to fields that carry no
// data_category annotation.
const (
	UnannotatedKeep   = "keep"   // pass them through (the default)
	UnannotatedRemove = "remove" // remove them (set to null/default) on this stream
)

// Values of Stream.Excluded: what happens when the grant excludes a data
// category (for example "personalise, but leave my health data out") and the
// event has fields of that category.
const (
	ExcludedRemove = "remove" // remove those fields, publish the rest (the default)
	ExcludedDrop   = "drop"   // leave the whole event off the stream
)

// Action is the treatment of one field on a stream.
type Action string

// Actions a treatment may name.
const (
	ActionRemove         Action = "remove"          // remove the field (null, or the schema default)
	ActionPseudonymise   Action = "pseudonymise"    // replace by a keyed hash: joinable, not readable
	ActionMask           Action = "mask"            // replace by a fixed mask
	ActionTruncateIP     Action = "truncate_ip"     // IPv4 to /24, IPv6 to /48
	ActionGeneraliseHour Action = "generalise_hour" // timestamps truncated to the hour
	ActionGeneraliseDay  Action = "generalise_day"  // timestamps truncated to the day
	ActionKeep           Action = "keep"            // pass the field unchanged
	// ActionEncrypt encrypts the field under the subject's own data key
	// (crypto-shredding: erasing the subject destroys the key). Unlike the
	// other actions, an encrypt rule applies on every output of its stream
	// (see Stream.EncryptionFor), not only when redacting.
	ActionEncrypt Action = "encrypt"
)

// Actions lists every Action, in documentation order.
var Actions = []Action{ActionRemove, ActionPseudonymise, ActionMask, ActionTruncateIP, ActionGeneraliseHour, ActionGeneraliseDay, ActionKeep, ActionEncrypt}

// Encryption is the mode of an encrypt treatment.
type Encryption string

// Encryption modes.
const (
	// EncryptDeterministic (AES-SIV): equal values of one subject give
	// equal ciphertexts, so joins and group-bys on the field keep working
	// within a subject's key; it reveals which values of that subject are
	// equal.
	EncryptDeterministic Encryption = "deterministic"
	// EncryptRandomised (AES-GCM), the default: every encryption gives a
	// new ciphertext; equal values cannot be told apart, nor joined.
	EncryptRandomised Encryption = "randomised"
)

// Encryptions lists every Encryption, in documentation order.
var Encryptions = []Encryption{EncryptDeterministic, EncryptRandomised}

// Policy is a parsed and validated policy file. Build it with Parse or Load;
// the zero value has no purposes and no streams, so it allows nothing.
type Policy struct {
	// Controller is the organisation responsible for the processing (GDPR
	// Art. 4(7)), from the optional controller block; zero when the file
	// has none. It is documentation only: no decision depends on it.
	Controller Controller
	// Purposes in file order; ids are unique.
	Purposes []Purpose
	// Streams in file order; topics are unique and every purpose they name
	// is in Purposes.
	Streams []Stream
	// Signals maps consent signals (TCF, GPP, USP, GPC, Consent Mode) to
	// the purposes and data categories; the zero value when the file has no
	// signals section.
	Signals Signals
	// Version identifies the policy content: "sha256:" followed by the first
	// 16 hex digits of the SHA-256 of the file's bytes. It is recorded in
	// every audit record, and changes whenever one byte of the file does.
	Version string

	purposes map[string]int // id -> index in Purposes
	streams  map[string]int // topic -> index in Streams
}

// Controller names the controller of the processing for the record of
// processing activities (GDPR Art. 30(1)(a)).
type Controller struct {
	// Name is the controller's (legal) name; set whenever the block is.
	Name string
	// Contact is free text: an address, an e-mail, the data protection
	// officer; may be empty.
	Contact string
	// Line is the line of the controller key; 0 when the file has none.
	Line int
}

// Purpose is one processing purpose that customers grant or refuse
// separately (GDPR consent is per purpose).
type Purpose struct {
	// ID is the purpose name used by consent changes and streams; it matches
	// ^[a-z][a-z0-9_]*$.
	ID string
	// Description is free text for people.
	Description string
	// LegalBases are the legal bases of a grant that satisfy this purpose
	// (default [CONSENT]). A GRANT recorded under any other legal basis does
	// not allow the purpose.
	LegalBases []string
	// OptOut marks a CCPA-style opt-out purpose (for example "sale" or
	// "sharing"): a subject who was never asked counts as allowed, while an
	// explicit DENY or WITHDRAW (or an expired grant) does not. False, the
	// default, is opt-in: only a valid grant allows the purpose.
	OptOut bool
	// Line is the line of the purpose in the policy file.
	Line int
}

// Allows reports whether a grant under legalBasis satisfies the purpose.
func (p Purpose) Allows(legalBasis string) bool {
	return slices.Contains(p.LegalBases, legalBasis)
}

// Stream is one purpose stream: an output topic that receives the events
// allowed (or redacted) for every one of its purposes.
type Stream struct {
	// Topic is the output topic (default "compliant.<first purpose>").
	Topic string
	// Description is free text for people (the record of processing
	// activities shows it); empty when not given.
	Description string
	// Purposes must all be granted for an event to pass unchanged.
	Purposes []string
	// Recipients name the downstream systems, teams and processors that
	// consume the topic (for example braze, marketing-team), in file
	// order, without duplicates; empty when not given. Documentation
	// only: the enforcer does not use them.
	Recipients []string
	// Schemas are the full names of the event schemas the stream accepts;
	// empty means every schema. Use Accepts.
	Schemas []string
	// OnMissing says what to do when a purpose is not granted.
	OnMissing OnMissing
	// Unannotated is UnannotatedKeep or UnannotatedRemove: the treatment of
	// fields without a data category.
	Unannotated string
	// Excluded is ExcludedRemove or ExcludedDrop: what to do with fields of
	// a category that the grant excludes.
	Excluded string
	// Treatments are the redaction rules, in file order; the first that
	// matches a field wins. Use TreatmentFor.
	Treatments []Treatment
	// DefaultTreatment applies to annotated fields that no rule matches
	// (default ActionRemove), only when the stream redacts. A default of
	// ActionEncrypt is randomised (EncryptRandomised) and, unlike an
	// encrypt rule, does not apply to passed events.
	DefaultTreatment Action
	// GoogleConsentMode marks a stream whose consumers are Google
	// connectors (google_consent_mode: true; default false): besides the
	// consent context every output of a purpose stream carries, its
	// outputs carry the Google Consent Mode v2 signals ad_user_data and
	// ad_personalization, granted only when every purpose of the stream
	// is allowed by a valid grant given as consent (see the enforcer's
	// README section on output headers). Nothing else about the stream
	// changes: what is published, and how it is treated, is the same.
	GoogleConsentMode bool
	// Line is the line of the stream in the policy file.
	Line int
}

// Treatment is one redaction rule of a stream. Exactly one of Category and
// Field is set.
type Treatment struct {
	// Category is a data category pattern (see MatchCategory).
	Category string
	// Field is a field path: names joined by dots, "[]" after an array
	// field to mean its elements, as in "items[].sku".
	Field string
	// Action is what to do with the matching fields.
	Action Action
	// Encryption is the mode of an encrypt rule (EncryptRandomised when
	// the rule does not say); empty for every other action.
	Encryption Encryption
	// Line is the line of the rule in the policy file.
	Line int
}

// Load reads and parses the policy file at path; path names the file in
// every error message. An error reading the file is returned wrapped (it is
// not an *Error).
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Parse(data, path)
}

// Parse parses and validates a policy file. source names the file in error
// messages ("<source>:<line>:<col>: <problem>"). On any problem Parse returns
// a nil Policy and every problem it found, joined with errors.Join; each is
// an *Error (see Problems).
func Parse(data []byte, source string) (*Policy, error) {
	p := &parser{source: source, data: data}
	pol := p.parse()
	if err := p.err(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	pol.Version = "sha256:" + hex.EncodeToString(sum[:])[:16]
	pol.purposes = make(map[string]int, len(pol.Purposes))
	for i, pu := range pol.Purposes {
		pol.purposes[pu.ID] = i
	}
	pol.streams = make(map[string]int, len(pol.Streams))
	for i, s := range pol.Streams {
		pol.streams[s.Topic] = i
	}
	return pol, nil
}

// Purpose returns the purpose with the given id. The second result is false
// for an unknown purpose, which allows nothing (deny by default).
func (p *Policy) Purpose(id string) (Purpose, bool) {
	if p == nil {
		return Purpose{}, false
	}
	i, ok := p.purposes[id]
	if !ok {
		return Purpose{}, false
	}
	return p.Purposes[i], true
}

// Stream returns the stream that publishes to topic.
func (p *Policy) Stream(topic string) (Stream, bool) {
	if p == nil {
		return Stream{}, false
	}
	i, ok := p.streams[topic]
	if !ok {
		return Stream{}, false
	}
	return p.Streams[i], true
}

// Accepts reports whether the stream takes events of the schema with the
// given full name (namespace.name, as in "consentgate.events.Purchase"). A
// stream with no schemas listed accepts every schema.
func (s Stream) Accepts(schemaFullName string) bool {
	return len(s.Schemas) == 0 || slices.Contains(s.Schemas, schemaFullName)
}

// TreatmentFor returns the action for the field at fieldPath (as in
// "items[].sku") whose schema annotation is category ("" for an unannotated
// field) when the stream redacts an event.
//
// The rules are tried in file order and the first match wins: a field rule
// matches its exact path (annotated or not), a category rule matches by
// MatchCategory (never an unannotated field). When no rule matches, an
// annotated field gets DefaultTreatment, and an unannotated field is kept or
// removed as Unannotated says. Anything unexpected (a zero Stream) resolves
// to ActionRemove.
func (s Stream) TreatmentFor(fieldPath, category string) Action {
	for _, t := range s.Treatments {
		if t.Field != "" && t.Field == fieldPath {
			return t.Action
		}
		if t.Category != "" && MatchCategory(t.Category, category) {
			return t.Action
		}
	}
	if category == "" {
		if s.Unannotated == UnannotatedKeep {
			return ActionKeep
		}
		return ActionRemove
	}
	if s.DefaultTreatment == "" {
		return ActionRemove
	}
	return s.DefaultTreatment
}

// EncryptionFor reports whether the field at fieldPath with data category
// category ("" for an unannotated field) is encrypted on every output of
// the stream (passed events, redacted ones, and those whose excluded
// categories are removed), and in which mode: it is when the first rule
// that matches the field, in TreatmentFor's order (file order; a field
// rule by exact path, a category rule by MatchCategory), is an encrypt
// rule. DefaultTreatment does not count: a default of encrypt applies only
// when the stream redacts (TreatmentFor). A field of a category the grant
// excludes is removed, never encrypted; that is for the caller to check
// first.
func (s Stream) EncryptionFor(fieldPath, category string) (Encryption, bool) {
	for _, t := range s.Treatments {
		if (t.Field != "" && t.Field == fieldPath) || (t.Category != "" && MatchCategory(t.Category, category)) {
			if t.Action != ActionEncrypt {
				return "", false
			}
			if t.Encryption == "" {
				return EncryptRandomised, true
			}
			return t.Encryption, true
		}
	}
	return "", false
}

// Encrypts reports whether the stream has an encrypt rule or an encrypt
// default_treatment.
func (s Stream) Encrypts() bool {
	if s.DefaultTreatment == ActionEncrypt {
		return true
	}
	for _, t := range s.Treatments {
		if t.Action == ActionEncrypt {
			return true
		}
	}
	return false
}

// Encrypts reports whether some stream of the policy has an encrypt rule
// or an encrypt default_treatment: the enforcer then needs its data keys
// (the key-encryption key and the keys topic).
func (p *Policy) Encrypts() bool {
	if p == nil {
		return false
	}
	for _, s := range p.Streams {
		if s.Encrypts() {
			return true
		}
	}
	return false
}
