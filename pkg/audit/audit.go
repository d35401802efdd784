// Package audit holds the audit record (schemas/audit_record.v2.avsc) as Go
// values and reads records of either version from their single-object
// encoding. The enforcer writes them (its own fast encoder, in
// services/enforcer/internal/enforce); the ledger and consentctl read them
// with Read.
package audit

import (
	"time"

	"github.com/consentgate/consentgate/pkg/decision"
)

// Schema is the full name of the audit record schema.
const Schema = "consentgate.audit.AuditRecord"

// Outcome says whether an input event was decided or dead-lettered
// (the AuditOutcome enum of the audit record).
type Outcome string

// Audit outcomes.
const (
	Decided      Outcome = "DECIDED"
	DeadLettered Outcome = "DEAD_LETTERED"
)

// Record is one audit record (consentgate.audit.AuditRecord version 2)
// as Go values: what the enforcer did with one input event. It is what the
// encoders take and what Read returns, for either version.
type Record struct {
	// Version is the schema version the record was read with (1 or 2;
	// Read sets it). A version 1 record covers one stream only: its
	// Decisions hold that one, without Purposes.
	Version int
	// EventID, SubjectID, DeadLetterReason and EventSchema encode null when
	// empty.
	EventID, SubjectID string
	Outcome            Outcome
	DeadLetterReason   string
	EventSchema        string
	PolicyVersion      string
	SourceTopic        string
	SourcePartition    int32
	SourceOffset       int64
	ProcessedAt        time.Time
	// Decisions: one per stream of the policy, in the policy's order; none
	// for a dead-lettered event.
	Decisions []StreamDecision
}

// StreamDecision is the decision of one stream in an Record.
type StreamDecision struct {
	Stream   string
	Purposes []string
	Decision decision.Outcome
	Reason   string
	// DecidingPurpose is decision.Decision.Purpose.
	DecidingPurpose string
	TreatedFields   []string
	// Consents: decision.Decision.Consents. A CapturedAt is written only
	// with a ChangeID.
	Consents []decision.PurposeConsent
}
