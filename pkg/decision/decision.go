// Package decision is the pure heart of enforcement: given an event's schema,
// the subject's consent state, a stream of the policy and the time, it says
// whether the event may go to that stream, and why.
//
// Deny by default: every path that is not an explicit, valid grant for every
// purpose the stream requires ends in Dropped. The package does no I/O and
// returns no errors.
//
// Two decisions publish a treated copy instead of the event as it came
// (Outcome Redacted; package redact does the treating):
//
//   - consent is missing for a stream whose on_missing_consent is redact:
//     Treatment TreatRedact, every field treated as the stream says;
//   - consent is granted but excludes data categories that the event
//     carries, on a stream whose excluded_categories is remove: Treatment
//     TreatRemoveExcluded, only those fields removed. With
//     excluded_categories: drop the event is dropped instead.
//
// In both cases Decision.Excluded lists the excluded category patterns of
// every granted purpose, which the redaction always removes.
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
	TreatRemoveExcluded                  // only the excluded categories removed
)

// Decision is the verdict for one event on one stream.
type Decision struct {
	Stream  string
	Purpose string // the purpose that decided (the first that failed, else the first)
	Outcome Outcome
	Reason  string
	// The consent change that decided, if any.
	ChangeID   string
	CapturedAt time.Time
	// Treatment and Excluded say what a Redacted event needs.
	Treatment Treatment
	Excluded  []string
}

// Input is what a decision needs to know about the event.
type Input struct {
	Schema     string            // full name of the event's (reader) schema
	Categories map[string]string // field path -> data category of the schema
	State      *consent.State    // nil when nothing is stored for the subject
	Now        time.Time
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
	if carriesExcluded(in.Categories, excluded) {
		if s.Excluded == policy.ExcludedDrop {
			d.Reason = ReasonExcludedCategory
			return d
		}
		d.Outcome, d.Treatment, d.Reason = Redacted, TreatRemoveExcluded, ReasonGrantedWithExclusions
		return d
	}
	d.Outcome = Passed
	return d
}

// carriesExcluded reports whether any field category matches an excluded
// pattern.
func carriesExcluded(categories map[string]string, excluded []string) bool {
	for _, pattern := range excluded {
		for _, cat := range categories {
			if policy.MatchCategory(pattern, cat) {
				return true
			}
		}
	}
	return false
}
