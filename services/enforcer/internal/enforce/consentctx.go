package enforce

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
)

// Headers of the consent context: every record the enforcer publishes on a
// purpose stream (passed or redacted; never a dead letter or an audit
// record) says under which consent it was published, so that downstream
// connectors forward that consent instead of guessing it.
//
// On a record published under consent (Passed, or Redacted because the
// grant excludes data categories the event carries):
//
//   - HeaderConsentPurposes: the stream's purposes, comma-separated, in
//     the policy's order ("marketing,analytics"): all of them, since a
//     record is published under consent only when every purpose of its
//     stream allows it;
//   - HeaderConsentLegalBasis: per purpose, the legal basis of the grant
//     that allowed it ("marketing=CONSENT,analytics=LEGITIMATE_INTEREST"),
//     or LegalBasisOptOutNotObjected for an opt-out purpose allowed
//     because the subject never objected (never asked, unknown subject);
//   - HeaderConsentChangeIDs: per purpose allowed by a grant, the change
//     id of that grant ("marketing=c-17,analytics=sig-…"), as the audit
//     record's consent_change_id; a purpose allowed without a change (an
//     opt-out never objected to) is not listed. See appendChangeID for
//     how an id is written (escaped, bounded, withheld). On a copy that
//     does not carry the subject id as it came in (its subject_id
//     removed, pseudonymised, masked or encrypted, whether by a rule or
//     by an exclusion of its category) every id is ChangeIDWithheld
//     ("marketing=~withheld"): the ids are unique to the subject's
//     changes, and its audit records name them, so they would tie the
//     record back to the subject the treatment took out.
//
// On a record redacted because consent is missing (on_missing_consent:
// redact) the record was published without the consent of its stream:
// the three headers are present and empty (allowed for no purpose, on
// no legal basis, by no change), even when some of the stream's purposes
// were granted, because the record was not published under them. Such a
// record carries HeaderConsentRedaction RedactionMissingConsent; a
// record redacted for excluded categories carries
// RedactionExcludedCategories; a passed record has no such header.
//
// On a stream with google_consent_mode: true (policy.Stream.
// GoogleConsentMode) every output also carries HeaderAdUserData and
// HeaderAdPersonalization, each derived on its own. One is
// ConsentModeGranted only when the record passed, every purpose of the
// stream is allowed by a grant under CONSENT, and, when the policy's
// signals rules map any Consent Mode state (a rule on a consent_mode.*
// field), every purpose that the purpose rules on its state
// (consent_mode.ad_user_data, consent_mode.ad_personalization; rules of
// every jurisdiction) map to is allowed (unexpired, unerased) by a grant
// under CONSENT too; a state no purpose rule maps is always denied.
// Otherwise it is ConsentModeDenied (fail closed): a redacted record
// (whichever the reason), an opt-out purpose allowed only because the
// subject never objected, and a grant under another legal basis
// (LEGITIMATE_INTEREST, CONTRACT: Consent Mode signals consent) all deny,
// and a state the customer refused is never sent as granted because
// another one was granted. A policy that maps no Consent Mode state
// derives both from the stream's purposes alone.
//
// Every key is in the enforcer's namespace (EnforcerHeader): a record
// forwarded as it came keeps none of the input's headers in it, so these
// headers are the enforcer's, each once.
const (
	HeaderConsentPurposes   = "consentgate.consent.purposes"
	HeaderConsentLegalBasis = "consentgate.consent.legal_basis"
	HeaderConsentChangeIDs  = "consentgate.consent.change_ids"
	HeaderConsentRedaction  = "consentgate.consent.redaction"
	HeaderAdUserData        = "consentgate.consent_mode.ad_user_data"
	HeaderAdPersonalization = "consentgate.consent_mode.ad_personalization"
)

// Values of the consent context headers.
const (
	// LegalBasisOptOutNotObjected is the legal basis header's value for an
	// opt-out purpose allowed because the subject never objected to it
	// (decision.ReasonOptOutNotExercised): no grant, no change id.
	LegalBasisOptOutNotObjected = "OPT_OUT_NOT_OBJECTED"
	// RedactionMissingConsent: redacted because a purpose of the stream
	// is not allowed (on_missing_consent: redact).
	RedactionMissingConsent = "missing_consent"
	// RedactionExcludedCategories: every purpose allowed, the fields of
	// the categories the grant excludes removed.
	RedactionExcludedCategories = "excluded_categories"
	ConsentModeGranted          = "granted"
	ConsentModeDenied           = "denied"
	// ChangeIDWithheld stands for a change id that holds the subject id:
	// headers never carry a subject id.
	ChangeIDWithheld = "~withheld"
	// changeIDDigest starts the form of a change id too long to write
	// escaped: "~sha256:" and the hex SHA-256 of the id as stored (the
	// audit record's consent_change_id).
	changeIDDigest = "~sha256:"
)

// maxChangeIDHeader bounds one change id as written in
// HeaderConsentChangeIDs; a longer escaped id is written as its digest.
const maxChangeIDHeader = MaxIDBytes

// streamContext is what the consent context of one stream's records
// shares: the HeaderConsentPurposes value of a record published under
// consent, and whether the stream has the Consent Mode headers.
type streamContext struct {
	purposes []byte
	google   bool
	// of are the stream's purposes as the policy declares them; nil when
	// one is unknown (a policy that Parse returned has none).
	of []policy.Purpose
	// userData and personalization say how HeaderAdUserData and
	// HeaderAdPersonalization are derived (only when google).
	userData, personalization modeRule
}

// modeRule is how the policy derives one Consent Mode header (see
// HeaderAdUserData): from the stream's purposes alone when the policy's
// signals rules map no Consent Mode state at all (mapped, of empty), else
// also from the purposes its purpose rules map from the state (of); a
// state no purpose rule maps, or one naming an unknown purpose, is not
// mapped and always denied.
type modeRule struct {
	mapped bool
	of     []policy.Purpose
}

// Consent Mode states of the two headers, as the signals rules name them.
const (
	signalAdUserData        = "consent_mode.ad_user_data"
	signalAdPersonalization = "consent_mode.ad_personalization"
)

// newModeRule returns how pol derives the Consent Mode header of signal
// field state ("consent_mode.ad_user_data").
func newModeRule(pol *policy.Policy, state string) modeRule {
	source := false
	for _, r := range pol.Signals.Rules {
		source = source || strings.HasPrefix(r.Signal, "consent_mode.")
	}
	if !source {
		return modeRule{mapped: true}
	}
	var m modeRule
	for _, r := range pol.Signals.Rules {
		if r.Signal != state || r.IsCategoryRule() {
			continue
		}
		for _, id := range r.Purposes {
			p, ok := pol.Purpose(id)
			if !ok {
				return modeRule{}
			}
			if !slices.ContainsFunc(m.of, func(q policy.Purpose) bool { return q.ID == id }) {
				m.of = append(m.of, p)
			}
		}
	}
	m.mapped = len(m.of) > 0
	return m
}

// granted reports whether the Consent Mode header that m derives is
// ConsentModeGranted, for a record whose stream purposes all rest on
// CONSENT (consented: it passed, and every purpose of the stream is
// allowed by a grant under CONSENT): every purpose the rules map from the
// state must be allowed by st at now by a grant under CONSENT that its
// declaration accepts.
func (m *modeRule) granted(consented bool, st *consent.State, now time.Time) bool {
	if !consented || !m.mapped {
		return false
	}
	for i := range m.of {
		p := &m.of[i]
		v := st.Check(p.ID, now)
		if !v.Allowed || v.LegalBasis != consent.BasisConsent || !p.Allows(string(consent.BasisConsent)) {
			return false
		}
	}
	return true
}

// consentValues are the values shared by every record's consent context.
type consentValues struct {
	empty, missing, excluded, granted, denied []byte
}

func newConsentValues() consentValues {
	return consentValues{empty: []byte{}, missing: []byte(RedactionMissingConsent), excluded: []byte(RedactionExcludedCategories),
		granted: []byte(ConsentModeGranted), denied: []byte(ConsentModeDenied)}
}

func newStreamContexts(pol *policy.Policy) []streamContext {
	out := make([]streamContext, len(pol.Streams))
	for i, s := range pol.Streams {
		out[i] = newStreamContext(pol, s)
	}
	return out
}

func newStreamContext(pol *policy.Policy, s policy.Stream) streamContext {
	sc := streamContext{purposes: []byte(strings.Join(s.Purposes, ",")), google: s.GoogleConsentMode, of: make([]policy.Purpose, len(s.Purposes))}
	if sc.google {
		sc.userData, sc.personalization = newModeRule(pol, signalAdUserData), newModeRule(pol, signalAdPersonalization)
	}
	for i, id := range s.Purposes {
		p, ok := pol.Purpose(id)
		if !ok {
			sc.of = nil
			break
		}
		sc.of[i] = p
	}
	return sc
}

// consentHeaderCount is how many consent context headers a record of
// decision d on a stream with context sc has.
func consentHeaderCount(sc *streamContext, d *decision.Decision) int {
	n := 3
	if d.Outcome == decision.Redacted {
		n++
	}
	if sc.google {
		n += 2
	}
	return n
}

// missingConsent reports whether d publishes a record without the
// consent of its stream (redacted under on_missing_consent: redact).
func missingConsent(d *decision.Decision) bool {
	return d.Outcome == decision.Redacted && d.Treatment == decision.TreatRedact
}

// appendConsent appends the consent context headers of decision d (not
// Dropped) on stream s, whose context is sc, to h, their values carved
// from w's arena: h must have room for consentHeaderCount of them. st and
// now are what d was decided on, subject the event's subject id (withheld
// from change ids). The verdict of every purpose is read again from st
// (consent.State.Check is pure: the verdict Decide had); an error means
// it does not agree with d, and nothing may be published: decide then
// drops the record (ReasonRedactionFailed), as it does any output it
// cannot make.
func (e *Enforcer) appendConsent(w *worker, h []kafka.Header, sc *streamContext, s policy.Stream, d *decision.Decision,
	st *consent.State, subject string, carried bool, now time.Time) ([]kafka.Header, error) {
	cv := &e.consentB
	if missingConsent(d) {
		h = append(h, kafka.Header{Key: HeaderConsentPurposes, Value: cv.empty},
			kafka.Header{Key: HeaderConsentLegalBasis, Value: cv.empty},
			kafka.Header{Key: HeaderConsentChangeIDs, Value: cv.empty},
			kafka.Header{Key: HeaderConsentRedaction, Value: cv.missing})
		if sc.google {
			h = append(h, kafka.Header{Key: HeaderAdUserData, Value: cv.denied}, kafka.Header{Key: HeaderAdPersonalization, Value: cv.denied})
		}
		return h, nil
	}
	basisCap := 0
	for _, p := range s.Purposes {
		basisCap += len(p) + 2 + len(LegalBasisOptOutNotObjected)
	}
	// The bases are written straight into the arena, the change ids into
	// the worker's scratch (bytes only: no write barriers) and copied
	// after them.
	basis := w.ar.start(basisCap)
	ids := w.idScratch[:0]
	consented := d.Outcome == decision.Passed
	if len(sc.of) != len(s.Purposes) {
		return h, fmt.Errorf("consent context: stream %s names an unknown purpose", s.Topic)
	}
	for i, p := range s.Purposes {
		pur := &sc.of[i]
		v := st.Check(p, now)
		if i > 0 {
			basis = append(basis, ',')
		}
		basis = append(basis, p...)
		basis = append(basis, '=')
		switch {
		case v.Allowed && pur.Allows(string(v.LegalBasis)):
			basis = append(basis, v.LegalBasis...)
			consented = consented && v.LegalBasis == consent.BasisConsent
			if v.ChangeID != "" {
				if len(ids) > 0 {
					ids = append(ids, ',')
				}
				ids = append(ids, p...)
				ids = append(ids, '=')
				if carried {
					ids = appendChangeID(ids, v.ChangeID, subject)
				} else {
					ids = append(ids, ChangeIDWithheld...)
				}
			}
		case !v.Allowed && pur.OptOut && (v.Reason == consent.ReasonNeverAsked || v.Reason == consent.ReasonUnknownSubject):
			basis = append(basis, LegalBasisOptOutNotObjected...)
			consented = false
		default:
			return h, fmt.Errorf("consent context: purpose %s of stream %s is not allowed (%s), yet the decision is %s", p, s.Topic, v.Reason, d.Outcome)
		}
	}
	w.idScratch = ids[:0]
	basis = w.ar.commit(basis)
	if len(ids) == 0 {
		ids = cv.empty
	} else {
		ids = w.ar.commit(append(w.ar.start(len(ids)), ids...))
	}
	h = append(h, kafka.Header{Key: HeaderConsentPurposes, Value: sc.purposes},
		kafka.Header{Key: HeaderConsentLegalBasis, Value: basis},
		kafka.Header{Key: HeaderConsentChangeIDs, Value: ids})
	if d.Outcome == decision.Redacted {
		h = append(h, kafka.Header{Key: HeaderConsentRedaction, Value: cv.excluded})
	}
	if sc.google {
		ud, ap := cv.denied, cv.denied
		if sc.userData.granted(consented, st, now) {
			ud = cv.granted
		}
		if sc.personalization.granted(consented, st, now) {
			ap = cv.granted
		}
		h = append(h, kafka.Header{Key: HeaderAdUserData, Value: ud}, kafka.Header{Key: HeaderAdPersonalization, Value: ap})
	}
	return h, nil
}

// ConsentHeaders returns the consent context headers (see
// HeaderConsentPurposes) of the record that decision d, made with policy
// pol on stream s for subject subject whose consent state was st at now,
// publishes with the subject id as it came in (a forwarded record, or a
// copy whose subject_id is kept): none for a Dropped decision. It is what
// the enforcer adds to the record's other headers, for explain and tests;
// the error is appendConsent's. See ConsentHeadersOf for a copy that does
// not carry the subject id as it came in.
func ConsentHeaders(pol *policy.Policy, s policy.Stream, d decision.Decision, st *consent.State, subject string, now time.Time) ([]kafka.Header, error) {
	return ConsentHeadersOf(pol, s, d, st, subject, true, now)
}

// ConsentHeadersOf is ConsentHeaders for a record that carries the
// subject id as it came in (carried) or not (its subject_id removed,
// pseudonymised, masked or encrypted): then every change id listed is
// ChangeIDWithheld.
func ConsentHeadersOf(pol *policy.Policy, s policy.Stream, d decision.Decision, st *consent.State, subject string, carried bool, now time.Time) ([]kafka.Header, error) {
	if d.Outcome == decision.Dropped {
		return nil, nil
	}
	e := &Enforcer{policy: pol, consentB: newConsentValues()}
	sc := newStreamContext(pol, s)
	var w worker
	return e.appendConsent(&w, make([]kafka.Header, 0, consentHeaderCount(&sc, &d)), &sc, s, &d, st, subject, carried, now)
}

// appendChangeID appends change id id to b as HeaderConsentChangeIDs
// writes it:
//
//   - ChangeIDWithheld when id holds the subject id (byte for byte):
//     headers never carry a subject id;
//   - else escaped: every byte but A-Z a-z 0-9 - . _ : as %XX (upper-case
//     hex), so that ',' and '=' separate entries unambiguously, the value
//     is printable ASCII, and unescaping gives the id back ("c=1,x" is
//     written c%3D1%2Cx, "é" %C3%A9);
//   - when the escaped id is longer than maxChangeIDHeader (256) bytes,
//     "~sha256:" and the 64 hex digits of the SHA-256 of the id.
//
// The verdict never names an id longer than MaxIDBytes (consent.State.
// Check), so an id costs at most 256 bytes; '~' is always escaped, so a
// value starting with it is one of the two marks.
func appendChangeID(b []byte, id, subject string) []byte {
	if subject != "" && strings.Contains(id, subject) {
		return append(b, ChangeIDWithheld...)
	}
	const digits = "0123456789ABCDEF"
	start := len(b)
	for i := 0; i < len(id); i++ {
		if c := id[i]; plainIDByte(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', digits[c>>4], digits[c&15])
		}
		if len(b)-start > maxChangeIDHeader {
			sum := sha256.Sum256([]byte(id))
			return hex.AppendEncode(append(b[:start], changeIDDigest...), sum[:])
		}
	}
	return b
}

// plainIDByte reports whether c is written as it is in a change id.
func plainIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':'
}
