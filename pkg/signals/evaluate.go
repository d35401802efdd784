package signals

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// Value is what one signal field says.
type Value int

// Values of a signal field.
const (
	// Absent: the field says nothing (not in the signals sent, or "not
	// applicable"). Absence is never a grant, and takes nothing away.
	Absent Value = iota
	// Allow: consent given (opt-in fields) or no objection (opt-out fields).
	Allow
	// Refuse: consent refused (opt-in) or an objection (opt-out).
	Refuse
)

func (v Value) String() string {
	switch v {
	case Allow:
		return "allow"
	case Refuse:
		return "refuse"
	}
	return "absent"
}

// Reading is the value of one field of the catalogue in a submission.
type Reading struct {
	// Field is the catalogue name ("tcf.purpose.1").
	Field string
	// Value is what the field says.
	Value Value
	// LegalBasis is the basis an Allow rests on (CONSENT or
	// LEGITIMATE_INTEREST; TCF purposes read by their rule's basis).
	LegalBasis string
}

// Outcome is what the signals decide for one purpose.
type Outcome struct {
	// Purpose is the policy purpose.
	Purpose string
	// Action is GRANT, DENY (consent refused) or WITHDRAW (an objection).
	Action consent.Action
	// LegalBasis of a GRANT.
	LegalBasis string
	// Excluded are the data categories a GRANT leaves out (category rules
	// whose field did not allow), sorted.
	Excluded []string
	// Sources are the sources that decided (policy.SignalSources names),
	// sorted.
	Sources []string
	// Fields are the deciding fields with what they said, as
	// "tcf.purpose.1=refuse", sorted.
	Fields []string
	// At is when the customer made the choice the outcome records: the
	// submission's captured time, or for a decision read from TC strings
	// their LastUpdated when it is earlier (a TC string kept in a cookie
	// and sent again months later records a decision of back then). A
	// GRANT takes the earliest time of its deciding sources, a DENY or
	// WITHDRAW the latest of its refusing ones. Zero means the submission's
	// time (Evaluate does not know it).
	At time.Time
}

// Evaluate applies the policy's signals section to decoded signals and
// returns one outcome per purpose the signals decide, in the order of the
// policy's purposes. A purpose the signals say nothing about (no rule maps
// it, or every field that does is absent) has no outcome: its consent is
// left as it is.
//
// The rules (pkg/policy README, "Signals"):
//
//   - Within one source, the rules that map a purpose must all allow it for
//     a grant; one refusal takes it away; otherwise (a field absent) the
//     source says nothing about the purpose.
//   - An opt-out field's "did not opt out" grants only purposes declared
//     opt_out; for an opt-in purpose it says nothing.
//   - A rule limited to jurisdictions applies when the submission's
//     jurisdiction is among them; when the jurisdiction is not known, the
//     rule may take consent away but never grants.
//   - Between sources: with precedence most_restrictive, any refusal wins;
//     with ordered, the first source in the order that says something
//     decides (unlisted sources after, most restrictive among themselves).
//   - A GRANT excludes the categories of every category rule for its
//     purpose whose field does not allow (absent included: fail closed),
//     unless the rule is limited to jurisdictions that exclude the
//     submission's known jurisdiction.
func Evaluate(pol *policy.Policy, d *Decoded, jurisdiction string) []Outcome {
	if pol == nil || d == nil {
		return nil
	}
	sig := pol.Signals
	var out []Outcome
	for _, pu := range pol.Purposes {
		bySource := map[string]*sourceVote{}
		for _, r := range sig.Rules {
			if r.IsCategoryRule() || !slices.Contains(r.Purposes, pu.ID) {
				continue
			}
			f, ok := policy.LookupSignalField(r.Signal)
			if !ok || !d.Present(f.Source) {
				continue
			}
			rd := read(d, f, r.Basis, sig.TCFVendorID)
			v := rd.Value
			if f.Flag && v == Absent {
				continue // an unset objection flag is no signal: it holds nothing back
			}
			if v == Allow && f.Kind == policy.SignalOptOut {
				// No objection is no consent: it grants nothing (an opt-out
				// purpose never asked is allowed anyway; a recorded objection
				// stays until the customer grants).
				v = Absent
			}
			cover := r.Coverage(jurisdiction)
			if cover == policy.CoverNone {
				continue
			}
			sv := bySource[f.Source]
			if sv == nil {
				sv = &sourceVote{source: f.Source, all: true}
				bySource[f.Source] = sv
			}
			sv.add(rd.Field, v, f.Kind, rd.LegalBasis, cover == policy.CoverFull)
		}
		o, ok := decide(pu, sig, bySource)
		if !ok {
			continue
		}
		o.At = decidedAt(d, o)
		if o.Action == consent.ActionGrant {
			o.Excluded = excluded(d, sig, pu, jurisdiction)
		}
		out = append(out, o)
	}
	return out
}

// sourceVote collects what one source's rules say about one purpose.
type sourceVote struct {
	source    string
	refuse    bool
	optOut    bool // a refusing field is an opt-out (WITHDRAW, not DENY)
	all       bool // every field read allows
	n         int
	fullAllow int  // allowing fields of rules that fully apply
	li        bool // some allowing field rests on legitimate interest
	fields    []string
	refused   []string
}

// add counts one rule's reading. full is false for a rule that only may
// apply (policy.CoverPartial): it can refuse, and its absence holds a
// grant back, but it never grants by itself.
func (s *sourceVote) add(field string, v Value, kind policy.SignalKind, basis string, full bool) {
	s.n++
	switch v {
	case Refuse:
		s.refuse = true
		s.optOut = s.optOut || kind == policy.SignalOptOut
		s.refused = append(s.refused, field+"=refuse")
	case Allow:
		s.li = s.li || basis == policy.LegalBasisLegitimateInterest
		s.fields = append(s.fields, field+"=allow")
		if full {
			s.fullAllow++
		}
	default:
		s.all = false
	}
}

// says reports what the source decides: Refuse, Allow or Absent. It allows
// only when every rule read allows and at least one of them fully applies,
// so that a customer of unknown (or coarser) jurisdiction is never granted
// what some jurisdiction they may be in would not grant.
func (s *sourceVote) says() Value {
	switch {
	case s == nil || s.n == 0:
		return Absent
	case s.refuse:
		return Refuse
	case s.all && s.fullAllow > 0:
		return Allow
	}
	return Absent
}

// decide combines the sources' votes by the policy's precedence.
func decide(pu policy.Purpose, sig policy.Signals, votes map[string]*sourceVote) (Outcome, bool) {
	var deciding []*sourceVote
	pick := func(vs []*sourceVote) []*sourceVote {
		var refusing, allowing []*sourceVote
		for _, v := range vs {
			switch v.says() {
			case Refuse:
				refusing = append(refusing, v)
			case Allow:
				allowing = append(allowing, v)
			}
		}
		if len(refusing) > 0 {
			return refusing
		}
		return allowing
	}
	var unlisted []*sourceVote
	for src, v := range votes {
		if sig.Precedence != policy.PrecedenceOrdered || !slices.Contains(sig.Order, src) {
			unlisted = append(unlisted, v)
		}
	}
	if sig.Precedence == policy.PrecedenceOrdered {
		for _, src := range sig.Order {
			if v := votes[src]; v.says() != Absent {
				deciding = []*sourceVote{v}
				break
			}
		}
	}
	if deciding == nil {
		deciding = pick(unlisted)
	}
	if len(deciding) == 0 {
		return Outcome{}, false
	}
	o := Outcome{Purpose: pu.ID}
	for _, v := range deciding {
		o.Sources = append(o.Sources, v.source)
	}
	sort.Strings(o.Sources)
	if deciding[0].says() == Refuse {
		o.Action = consent.ActionDeny
		for _, v := range deciding {
			if v.optOut {
				o.Action = consent.ActionWithdraw
			}
			o.Fields = append(o.Fields, v.refused...)
		}
		sort.Strings(o.Fields)
		return o, true
	}
	o.Action = consent.ActionGrant
	li := false
	for _, v := range deciding {
		li = li || v.li
		o.Fields = append(o.Fields, v.fields...)
	}
	sort.Strings(o.Fields)
	o.LegalBasis = grantBasis(pu, li)
	return o, true
}

// grantBasis is the legal basis of a grant: LEGITIMATE_INTEREST when an
// allowing TCF field rests on it, else CONSENT, or (for an opt-out purpose
// that does not take CONSENT) the purpose's first legal basis, so that a
// "did not opt out" never records a grant the purpose cannot accept.
func grantBasis(pu policy.Purpose, li bool) string {
	switch {
	case li:
		return policy.LegalBasisLegitimateInterest
	case pu.Allows(policy.LegalBasisConsent) || len(pu.LegalBases) == 0:
		return policy.LegalBasisConsent
	}
	return pu.LegalBases[0]
}

// excluded returns the categories a grant for pu leaves out.
func excluded(d *Decoded, sig policy.Signals, pu policy.Purpose, jurisdiction string) []string {
	var cats []string
	for _, r := range sig.Rules {
		if !r.IsCategoryRule() || (len(r.Purposes) > 0 && !slices.Contains(r.Purposes, pu.ID)) {
			continue
		}
		if r.Coverage(jurisdiction) == policy.CoverNone {
			continue
		}
		f, ok := policy.LookupSignalField(r.Signal)
		if !ok {
			cats = append(cats, r.Categories...)
			continue
		}
		v := Absent
		if d.Present(f.Source) {
			v = read(d, f, r.Basis, sig.TCFVendorID).Value
		}
		if f.Flag {
			// An objection flag excludes when set, and only then.
			if v == Refuse {
				cats = append(cats, r.Categories...)
			}
			continue
		}
		if v == Allow && f.Kind == policy.SignalOptOut {
			v = Absent // no objection is no consent to the category
		}
		if v != Allow {
			cats = append(cats, r.Categories...)
		}
	}
	slices.Sort(cats)
	return slices.Compact(cats)
}

// read returns what a field says in the decoded signals; several signals
// of one source (two TC strings) combine: a refusal in any wins, then an
// absence, and only then an allow.
func read(d *Decoded, f policy.SignalField, basis policy.Basis, vendor int) Reading {
	rd := Reading{Field: f.Name}
	var vals []Reading
	switch {
	case f.Source == "tcf":
		for _, t := range d.TCF {
			vals = append(vals, readTCF(t, f, basis, vendor))
		}
	case f.Source == "gpc":
		if d.GPC {
			vals = append(vals, Reading{Value: Refuse})
		}
	case f.Source == "consent_mode":
		switch d.ConsentMode[strings.TrimPrefix(f.Name, "consent_mode.")] {
		case Granted:
			vals = append(vals, Reading{Value: Allow, LegalBasis: policy.LegalBasisConsent})
		case Denied:
			vals = append(vals, Reading{Value: Refuse})
		default:
			vals = append(vals, Reading{Value: Absent})
		}
	default:
		name := strings.TrimPrefix(f.Source, "gpp.")
		field := strings.TrimPrefix(f.Name, f.Source+".")
		for _, s := range d.GPP {
			if s.Name == name {
				vals = append(vals, readGPP(s, field))
			}
		}
	}
	if len(vals) == 0 {
		return rd
	}
	worst := vals[0]
	for _, v := range vals[1:] {
		if rank(v.Value) > rank(worst.Value) {
			worst = v
		}
	}
	worst.Field = f.Name
	return worst
}

// decidedAt is when the choice an outcome records was made (Outcome.At),
// for decisions read from TC strings: no later than the end of the day
// the string was last updated (CMPs write LastUpdated rounded down to the
// day, so the decision was made within that day). A TC string kept in a
// cookie and sent again months later thus records a decision of back then,
// whether it grants or refuses, while two decisions of one day keep the
// order they were sent in. A grant takes the earliest end of day of its
// strings, a refusal the latest; a refusal that another source shares is
// as new as the submission. Zero means the submission's time.
func decidedAt(d *Decoded, o Outcome) time.Time {
	if !slices.Contains(o.Sources, "tcf") {
		return time.Time{}
	}
	grant := o.Action == consent.ActionGrant
	if !grant && len(o.Sources) > 1 {
		return time.Time{}
	}
	var at time.Time
	for _, t := range d.TCF {
		if t.LastUpdated.IsZero() {
			return time.Time{} // a string that does not say: the submission's time
		}
		end := t.LastUpdated.Add(24 * time.Hour)
		switch {
		case at.IsZero():
			at = end
		case grant && end.Before(at):
			at = end
		case !grant && end.After(at):
			at = end
		}
	}
	return at
}

// rank orders values by restrictiveness: allow < absent < refuse.
func rank(v Value) int {
	switch v {
	case Allow:
		return 0
	case Absent:
		return 1
	}
	return 2
}

func readGPP(s gpp.Section, field string) Reading {
	if field == "gpc" {
		if s.GPC != nil && *s.GPC {
			return Reading{Value: Refuse}
		}
		return Reading{Value: Absent}
	}
	v, ok := s.Fields[field]
	if !ok {
		return Reading{Value: Absent} // not in this section version
	}
	switch v {
	case 1:
		return Reading{Value: Refuse}
	case 2:
		return Reading{Value: Allow, LegalBasis: policy.LegalBasisConsent}
	}
	return Reading{Value: Absent}
}

// readTCF reads one TCF field of a TC string.
func readTCF(t *tcf.TCString, f policy.SignalField, basis policy.Basis, vendor int) Reading {
	parts := strings.Split(f.Name, ".")
	n, _ := strconv.Atoi(parts[len(parts)-1])
	switch {
	case strings.HasPrefix(f.Name, "tcf.special_feature."):
		if t.SpecialFeatureOptIns.Has(n) {
			return Reading{Value: Allow, LegalBasis: policy.LegalBasisConsent}
		}
		return Reading{Value: Refuse}
	case strings.HasPrefix(f.Name, "tcf.purpose."):
		if n == 1 && t.PurposeOneTreatment {
			// Purpose 1 was not disclosed (PurposeOneTreatment): its bit
			// records no choice of the customer.
			return Reading{Value: Absent}
		}
		return bits(t.PurposesConsent.Has(n) && vendorMay(t, vendor, n, tcf.RequireConsent),
			t.PurposesLITransparency.Has(n) && vendorMay(t, vendor, n, tcf.RequireLegitimateInterest), basis)
	case strings.HasPrefix(f.Name, "tcf.publisher.purpose."):
		if t.Publisher == nil {
			return Reading{Value: Absent}
		}
		return bits(t.Publisher.PurposesConsent.Has(n), t.Publisher.PurposesLITransparency.Has(n), basis)
	case strings.HasPrefix(f.Name, "tcf.publisher.custom_purpose."):
		if t.Publisher == nil || n > t.Publisher.NumCustomPurposes {
			return Reading{Value: Absent}
		}
		return bits(t.Publisher.CustomPurposesConsent.Has(n), t.Publisher.CustomPurposesLITransparency.Has(n), basis)
	}
	return Reading{Value: Absent}
}

// bits reads a consent bit and a legitimate-interest bit by the rule's
// basis.
func bits(consentBit, liBit bool, basis policy.Basis) Reading {
	switch basis {
	case policy.BasisLegitimateInterest:
		if liBit {
			return Reading{Value: Allow, LegalBasis: policy.LegalBasisLegitimateInterest}
		}
	case policy.BasisEither:
		if consentBit {
			return Reading{Value: Allow, LegalBasis: policy.LegalBasisConsent}
		}
		if liBit {
			return Reading{Value: Allow, LegalBasis: policy.LegalBasisLegitimateInterest}
		}
	default:
		if consentBit {
			return Reading{Value: Allow, LegalBasis: policy.LegalBasisConsent}
		}
	}
	return Reading{Value: Refuse}
}

// vendorMay reports whether the controller's vendor (0: not set, nothing
// more to check) may process for purpose on the given basis (consent:
// RequireConsent, legitimate interest: RequireLegitimateInterest): its
// vendor bit is set, it was disclosed when the string lists disclosed
// vendors, and no publisher restriction forbids the purpose or requires
// the other basis.
func vendorMay(t *tcf.TCString, vendor, purpose int, on tcf.RestrictionType) bool {
	if vendor == 0 {
		return true
	}
	if t.DisclosedVendors != nil && !t.DisclosedVendors.Has(vendor) {
		return false
	}
	if rt, ok := t.Restriction(vendor, purpose); ok && rt != on {
		return false // NotAllowed, or the other basis required
	}
	if on == tcf.RequireConsent {
		return t.VendorConsents.Has(vendor)
	}
	return t.VendorLegitimateInterests.Has(vendor)
}

// NoticeVersion is the notice version of changes decided by sources: the
// submission's own notice version (if given), then what each deciding
// source says about the notice shown: for TCF the CMP id and version and
// the TCF policy version ("tcf:cmp-10:v2:policy-4"); for GPP sections their
// name and version ("gpp:usnat-v2"); "usp:v1", "gpc", "consent-mode-v2".
func NoticeVersion(sub Submission, d *Decoded, sources []string) string {
	var parts []string
	for _, src := range sources {
		switch {
		case src == "tcf":
			for _, t := range d.TCF {
				parts = append(parts, fmt.Sprintf("tcf:cmp-%d:v%d:policy-%d", t.CmpID, t.CmpVersion, t.PolicyVersion))
			}
		case src == "gpc":
			parts = append(parts, "gpc")
		case src == "consent_mode":
			parts = append(parts, "consent-mode-v2")
		case src == "gpp.uspv1":
			parts = append(parts, "usp:v1")
		default:
			name := strings.TrimPrefix(src, "gpp.")
			for _, s := range d.GPP {
				if s.Name == name {
					parts = append(parts, fmt.Sprintf("gpp:%s-v%d", s.Name, s.Version))
				}
			}
		}
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	if sub.NoticeVersion != "" {
		parts = append([]string{sub.NoticeVersion}, parts...) // the caller's notice first
	}
	return strings.Join(parts, ";")
}

// Changes decodes a submission and returns the consent changes it makes:
// one per purpose the signals decide, in the order of the policy's
// purposes. Change ids are derived from the subject, the captured time,
// the jurisdiction, the notice version, the signals and the purpose, so
// that sending the same submission again gives the same changes (consent-
// sync applies a change once). A submission that does not decode is an
// error and gives no change.
func Changes(pol *policy.Policy, sub Submission) ([]consent.Change, error) {
	d, err := Decode(sub)
	if err != nil {
		return nil, err
	}
	return ChangesFrom(pol, sub, d), nil
}

// ChangesFrom is Changes for signals already decoded.
func ChangesFrom(pol *policy.Policy, sub Submission, d *Decoded) []consent.Change {
	outcomes := Evaluate(pol, d, sub.Jurisdiction)
	if len(outcomes) == 0 {
		return nil
	}
	base := SubmissionDigest(sub)
	out := make([]consent.Change, 0, len(outcomes))
	for _, o := range outcomes {
		c := consent.Change{
			SubjectID:     sub.SubjectID,
			Purpose:       o.Purpose,
			Action:        o.Action,
			LegalBasis:    consent.BasisConsent,
			Source:        "signal:" + strings.Join(o.Sources, "+"),
			NoticeVersion: NoticeVersion(sub, d, o.Sources),
			CapturedAt:    sub.CapturedAt,
		}
		if !o.At.IsZero() && o.At.Before(sub.CapturedAt) {
			c.CapturedAt = o.At.Truncate(time.Millisecond)
		}
		if o.Action == consent.ActionGrant {
			c.LegalBasis = consent.LegalBasis(o.LegalBasis)
			c.ExcludedCategories = o.Excluded
		}
		c.ChangeID = ChangeID(base, c)
		out = append(out, c)
	}
	return out
}

// SubmissionDigest hashes what identifies a submission: its subject,
// captured time, jurisdiction, notice version and signals (Consent Mode
// states in key order). Its first 8 bytes in hex are the
// consentgate.intake.signal_submission header of the changes it makes.
func SubmissionDigest(sub Submission) []byte {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("consentgate signal submission v2")
	field(sub.SubjectID)
	field(strconv.FormatInt(sub.CapturedAt.UnixMilli(), 10))
	field(sub.Jurisdiction)
	field(sub.NoticeVersion)
	// The signals in a canonical order: the same signals listed in another
	// order are the same submission (and the engine's outcome does not
	// depend on the order either).
	canon := make([]string, 0, len(sub.Signals))
	for _, s := range sub.Signals {
		var b strings.Builder
		for _, part := range []string{s.Type, s.Value} {
			b.WriteString(strconv.Itoa(len(part)))
			b.WriteByte(':')
			b.WriteString(part)
		}
		keys := make([]string, 0, len(s.States))
		for k := range s.States {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			kv := k + "=" + s.States[k]
			b.WriteString(strconv.Itoa(len(kv)))
			b.WriteByte(':')
			b.WriteString(kv)
		}
		canon = append(canon, b.String())
	}
	sort.Strings(canon)
	for _, c := range canon {
		field(c)
	}
	return h.Sum(nil)
}

// Change id prefixes: ties between changes captured in the same
// millisecond go to the greater change id (byte-wise), so the id of a
// change made from signals orders it in a tie: a DENY or WITHDRAW starts
// with "~" (above every letter and digit: it wins the tie against a grant
// with an ordinary id), a GRANT with "+" (below them: it loses the tie).
const (
	RestrictivePrefix = "~sig-"
	GrantPrefix       = "+sig-"
)

// ChangeID is the change id of a change a submission (by its digest)
// makes: RestrictivePrefix or GrantPrefix and 32 hex digits of a hash of
// the digest and everything the change says (purpose, action, legal basis,
// exclusions, source, notice version, captured time), so that a resend
// gives the same id and a different change (the same submission under
// another policy) another one.
func ChangeID(digest []byte, c consent.Change) string {
	h := sha256.New()
	h.Write(digest)
	for _, part := range []string{c.Purpose, string(c.Action), string(c.LegalBasis), strings.Join(c.ExcludedCategories, ","),
		c.Source, c.NoticeVersion, strconv.FormatInt(c.CapturedAt.UnixMilli(), 10)} {
		h.Write([]byte{0})
		h.Write([]byte(part))
	}
	prefix := GrantPrefix
	if c.Action.Restrictive() {
		prefix = RestrictivePrefix
	}
	return prefix + hex.EncodeToString(h.Sum(nil))[:32]
}

// Refused is a change that the clock rule refused: its purpose and why.
type Refused struct {
	Purpose string
	Reason  string
}

// BoundChanges applies the clock rule ([consent.Change.BoundCapturedAt])
// to each change of one submission against its receive time. A change the
// rule refuses (a GRANT dated too far ahead) is left out and reported; the
// others are kept, a DENY or WITHDRAW moved back as the rule says: one
// wrong clock must not cost an objection that came with a refused grant.
// The intake and the signals topic consumer both call it.
func BoundChanges(cs []consent.Change, received time.Time, skew time.Duration) (kept []consent.Change, refused []Refused) {
	return BoundChangesAt(cs, received, received, skew)
}

// BoundChangesAt is BoundChanges with a receive time for grants and
// another for DENY and WITHDRAW: a consumer that cannot trust one clock
// takes the earlier candidate for grants (a grant dated ahead is refused
// sooner) and the later for refusals (an objection is never moved back
// behind a grant it came after).
func BoundChangesAt(cs []consent.Change, grantsReceived, refusalsReceived time.Time, skew time.Duration) (kept []consent.Change, refused []Refused) {
	for _, c := range cs {
		received := grantsReceived
		if c.Action.Restrictive() {
			received = refusalsReceived
		}
		b, err := c.BoundCapturedAt(received, skew)
		if err != nil {
			refused = append(refused, Refused{Purpose: c.Purpose, Reason: clockReason(err)})
			continue
		}
		kept = append(kept, b)
	}
	return kept, refused
}

// clockReason is the field problem of a clock rule error, without values.
func clockReason(err error) string {
	var fe *consent.FieldError
	if errors.As(err, &fe) {
		return fe.Field + " " + fe.Problem
	}
	return "captured_at is refused by the clock rule"
}
