// Package signals turns consent signals that upstream systems send in their
// own formats into consent changes, by the rules of the policy's signals
// section (pkg/policy README, "Signals").
//
// A [Submission] is what one customer's signals say at one moment: any of
// an IAB TCF v2.2/v2.3 TC string (package tcf decodes it), an IAB GPP
// string with its US national, US state, USP and TCF EU sections (package
// gpp), a US Privacy string, the Sec-GPC header value, and Google Consent
// Mode v2 states. [Decode] reads all of them or fails as a whole: a
// malformed signal is an *Error with the reason (never the signal's text),
// and nothing of its submission is used. TC strings the TCF policy voids
// (TCF policy version before 4, global scope) are refused the same way.
//
// [Evaluate] applies the policy: each rule reads one catalogue field
// (policy.SignalFields) as Allow, Refuse or Absent; within one source every
// rule that maps a purpose must allow it for a grant and one refusal takes
// it away; between sources the policy's precedence decides (the most
// restrictive by default). Absence is never a grant: a purpose whose fields
// are all absent, not applicable, or outside their rules' jurisdictions gets
// no change at all. An opt-out field's "did not opt out" grants nothing (no
// objection is no consent). When the customer's jurisdiction is not known
// (or known only coarser than a rule's), rules limited to jurisdictions may
// take consent away but never grant.
//
// [Changes] makes one consent change per decided purpose: GRANT (with the
// legal basis and the excluded categories of the category rules whose field
// did not allow), DENY for a refused opt-in field, WITHDRAW for an opt-out.
// A DENY or WITHDRAW that replaces a grant owes a revocation notice like any
// other (consent-sync sends it). Change ids are derived from the submission
// (its signals in any order) and what the change says ("~sig-" for a
// refusal, "+sig-" for a grant, so that a refusal wins a same-millisecond
// tie, and 32 hex digits), so a resend is idempotent; a decision read from
// TC strings is dated no later than the end of the day of their
// LastUpdated;
// source names the deciding sources ("signal:tcf", "signal:gpc+gpp.usca"),
// and notice_version what they say of the notice shown (CMP id and version
// and TCF policy version for TCF).
package signals
