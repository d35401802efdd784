// Package decision is the pure heart of enforcement: given an event's schema,
// the subject's consent state, a stream of the policy and the time, it says
// whether the event may go to that stream, and why.
//
// Deny by default: every path that is not an explicit, valid grant for every
// purpose the stream requires ends in Dropped. The package does no I/O and
// returns no errors.
//
// Still minimal (walking skeleton): a stream in "redact" mode and a grant
// that excludes a data category present in the event both fail closed to
// Dropped, with their own reason codes, until field-level redaction lands.
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
	ReasonRedactNotAvailable    = "redaction_not_available"
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
	var excluded []string
	for i, purposeID := range s.Purposes {
		pur, ok := p.Purpose(purposeID)
		if !ok {
			d.Purpose, d.Reason = purposeID, ReasonUnknownPurpose
			return d
		}
		v := in.State.Check(purposeID, in.Now)
		if i == 0 || !v.Allowed {
			d.Purpose, d.ChangeID, d.CapturedAt = purposeID, v.ChangeID, v.CapturedAt
		}
		allowed, reason := v.Allowed, string(v.Reason)
		switch {
		case allowed && !slices.Contains(pur.LegalBases, string(v.LegalBasis)):
			allowed, reason = false, ReasonLegalBasisNotAccepted
		case !allowed && pur.OptOut && (v.Reason == consent.ReasonNeverAsked || v.Reason == consent.ReasonUnknownSubject):
			allowed, reason = true, ReasonOptOutNotExercised
		}
		if !allowed {
			d.Reason = reason
			if s.OnMissing == policy.OnMissingRedact {
				d.Reason = ReasonRedactNotAvailable + ":" + reason
			}
			return d
		}
		if d.Reason == "" {
			d.Reason = reason
		}
		excluded = append(excluded, v.ExcludedCategories...)
	}
	for _, pattern := range excluded {
		for _, cat := range in.Categories {
			if policy.MatchCategory(pattern, cat) {
				d.Reason = ReasonExcludedCategory
				return d
			}
		}
	}
	d.Outcome = Passed
	return d
}
