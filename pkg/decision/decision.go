// Package decision is the pure heart of enforcement: given the fields an
// event's bytes carry, the subject's consent state, a stream of the policy
// and the time, it says whether the event may go to that stream, why, and
// what must change in it first.
//
// Deny by default: every path that is not an explicit, valid grant for every
// purpose the stream requires ends in Dropped. The package does no I/O and
// returns no errors.
//
// # Judge what is sent
//
// The invariant the enforcer keeps: an event's bytes are published unchanged
// only when its Plan is empty, and the Plan is made from the *writer*
// schema's fields (what the bytes carry), judged with the writer's and the
// reader's data_category annotations together (FieldsOf). A field that only
// the writer has (a newer version from a registry) or that only the writer
// annotates (an older version) is judged like any other. Whenever the Plan
// is not empty the event is re-encoded from its decoded value with the
// treatments applied (package redact), and fields the reader schema lacks
// are not carried into the copy.
//
// PlanFor is the one function that says what must change: fields of an
// excluded category (Excludes, the one rule of exclusion matching, also
// used by package redact and by explain), every field whose first
// matching rule is encrypt (Cause CauseEncrypt: an encrypt rule applies on
// every output) and, on a stream whose unannotated_fields is remove, every
// unannotated field without a field rule that keeps it. Every stream
// setting thereby applies to every output of the stream:
//
//   - Passed with an empty Plan: the input bytes are forwarded;
//   - Passed with a Plan (unannotated fields to remove, fields to encrypt:
//     excluded fields never pass): Treatment TreatSettings, a copy
//     re-encoded with the stream's unannotated_fields and encrypt rules
//     applied, never the input bytes. The outcome stays Passed (consent
//     allowed every purpose); the audit lists the changed fields;
//   - consent is missing for a stream whose on_missing_consent is redact:
//     Outcome Redacted, Treatment TreatRedact, every field treated as the
//     stream says (treatments, default_treatment, unannotated_fields);
//   - consent is granted but excludes data categories that the event
//     carries, on a stream whose excluded_categories is remove: Outcome
//     Redacted, Treatment TreatRemoveExcluded: those fields removed, the
//     stream's encrypt rules and unannotated_fields applied, everything
//     else kept. With
//     excluded_categories: drop the event is dropped instead.
//
// In every treated case Decision.Excluded lists the excluded category
// patterns of every granted purpose, which the redaction always removes.
package decision

import (
	"slices"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
)

// Outcome is what happens to one event on one stream.
type Outcome string

// Outcomes, as written to the audit record.
const (
	Passed   Outcome = "PASSED"
	Redacted Outcome = "REDACTED"
	Dropped  Outcome = "DROPPED"
)

// Reason codes beyond the consent verdict reasons (consent.Reason*).
const (
	ReasonSchemaNotAccepted     = "schema_not_accepted"
	ReasonLegalBasisNotAccepted = "legal_basis_not_accepted"
	ReasonUnknownPurpose        = "unknown_purpose"
	ReasonOptOutNotExercised    = "opt_out_not_exercised"
	ReasonExcludedCategory      = "excluded_category"
	// ReasonGrantedWithExclusions: passed with excluded fields removed.
	ReasonGrantedWithExclusions = "granted_with_exclusions"
)

// Treatment says how a Redacted event is to be treated.
type Treatment int

// Treatments.
const (
	TreatNone           Treatment = iota // Passed or Dropped: nothing to treat
	TreatRedact                          // every field per the stream's rules
	TreatRemoveExcluded                  // the excluded categories removed, unannotated_fields applied
	// TreatSettings: a Passed event whose Plan is not empty, re-encoded
	// with the stream's unannotated_fields and encrypt rules applied
	// (package redact treats it as TreatRemoveExcluded, with nothing
	// excluded).
	TreatSettings
)

// Decision is the verdict for one event on one stream.
type Decision struct {
	Stream  string
	Purpose string // the purpose that decided (the first that failed, else the first)
	Outcome Outcome
	Reason  string
	// The consent change that decided, if any: the one of Purpose.
	ChangeID   string
	CapturedAt time.Time
	// Consents lists, for every purpose of the stream whose consent was
	// checked, in the stream's order, the consent change its verdict rests
	// on (ChangeID empty when there is none). Empty when no purpose was
	// checked (the schema is not accepted); an unknown purpose ends the
	// check, so it and the purposes after it are not listed.
	Consents []PurposeConsent
	// Treatment and Excluded say what a Redacted (or a treated Passed)
	// event needs.
	Treatment Treatment
	Excluded  []string
	// Plan lists what must change in the event's bytes (see PlanFor); set
	// for Passed and TreatRemoveExcluded decisions. The bytes may be
	// forwarded unchanged only when the outcome is Passed and Plan is
	// empty.
	Plan Plan
}

// PurposeConsent is the consent change one purpose's verdict rests on.
type PurposeConsent struct {
	Purpose string
	// ChangeID and CapturedAt name the subject's consent change for the
	// purpose that decided; ChangeID is empty when there is none (never
	// asked, unknown subject, an opt-out purpose not objected to).
	ChangeID   string
	CapturedAt time.Time
}

// Input is what a decision needs to know about the event.
type Input struct {
	Schema string // full name of the event's (reader) schema
	// Fields are the fields the event's bytes carry:
	// FieldsOf(writer, reader).Fields.
	Fields []Field
	State  *consent.State // nil when nothing is stored for the subject
	Now    time.Time
}

// Decide returns the decision for in on stream s of policy p.
func Decide(p *policy.Policy, s policy.Stream, in Input) Decision {
	d := Decision{Stream: s.Topic, Outcome: Dropped}
	if len(s.Purposes) > 0 {
		d.Purpose = s.Purposes[0]
	}
	if !s.Accepts(in.Schema) {
		d.Reason = ReasonSchemaNotAccepted
		return d
	}
	if len(s.Purposes) == 0 {
		d.Reason = ReasonUnknownPurpose
		return d
	}
	var (
		excluded   []string
		missing    bool
		missReason string
	)
	for i, purposeID := range s.Purposes {
		pur, ok := p.Purpose(purposeID)
		if !ok {
			d.Purpose, d.Reason = purposeID, ReasonUnknownPurpose
			return d
		}
		v := in.State.Check(purposeID, in.Now)
		if d.Consents == nil {
			d.Consents = make([]PurposeConsent, 0, len(s.Purposes)-i)
		}
		d.Consents = append(d.Consents, PurposeConsent{Purpose: purposeID, ChangeID: v.ChangeID, CapturedAt: v.CapturedAt})
		allowed, reason := v.Allowed, string(v.Reason)
		switch {
		case allowed && !slices.Contains(pur.LegalBases, string(v.LegalBasis)):
			allowed, reason = false, ReasonLegalBasisNotAccepted
		case !allowed && pur.OptOut && (v.Reason == consent.ReasonNeverAsked || v.Reason == consent.ReasonUnknownSubject):
			allowed, reason = true, ReasonOptOutNotExercised
		}
		if i == 0 || (!allowed && !missing) {
			d.Purpose, d.ChangeID, d.CapturedAt = purposeID, v.ChangeID, v.CapturedAt
		}
		if !allowed {
			if !missing {
				missing, missReason = true, reason
			}
			continue
		}
		if i == 0 {
			d.Reason = reason
		}
		excluded = append(excluded, v.ExcludedCategories...)
	}
	d.Excluded = excluded
	if missing {
		d.Reason = missReason
		if s.OnMissing == policy.OnMissingRedact {
			d.Outcome, d.Treatment = Redacted, TreatRedact
		}
		return d
	}
	plan := planFields(in.Fields, s, NewExclusions(excluded))
	if plan.Excluded() {
		if s.Excluded == policy.ExcludedDrop {
			d.Reason = ReasonExcludedCategory
			return d
		}
		d.Outcome, d.Treatment, d.Reason, d.Plan = Redacted, TreatRemoveExcluded, ReasonGrantedWithExclusions, plan
		return d
	}
	d.Outcome, d.Plan = Passed, plan
	if len(plan) > 0 {
		d.Treatment = TreatSettings
	}
	return d
}
