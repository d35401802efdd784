package explain

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// SignalFlags are the consent signals of one explain request as the
// command line gives them: any combination of them makes one
// signals.Submission (Submission).
type SignalFlags struct {
	// TCF is an IAB TCF v2.2 / v2.3 TC string (--tcf).
	TCF string
	// GPP is an IAB GPP string (--gpp).
	GPP string
	// USP is an IAB US Privacy string such as 1YNN (--usp).
	USP string
	// GPC is true for the header Sec-GPC: 1 (--gpc).
	GPC bool
	// ConsentMode are Google Consent Mode v2 states as
	// "ad_user_data=granted,ad_personalization=denied" (--consent-mode).
	ConsentMode string
	// Jurisdiction is where the customer is ("DE", "US-CA"); empty when
	// not known (--jurisdiction).
	Jurisdiction string
	// CapturedAt is when the customer gave the signals; zero means the
	// decision time (--captured-at).
	CapturedAt time.Time
	// Repeated are the values of --tcf, --gpp, --usp and --consent-mode
	// given more than once, after the first (which is TCF, GPP, USP or
	// ConsentMode), by signal type (signals.TypeTCF, TypeGPP, TypeUSP,
	// TypeConsentMode) in command-line order. consent-sync reads several
	// signals of one type in a submission together (a refusal in any of
	// them wins), and so does explain: none is dropped. An empty value here
	// is an error (an empty field means the flag was not given).
	Repeated map[string][]string
}

// repeatable are the signal types whose flag may be given more than once,
// in the order Submission lists them.
var repeatable = []string{signals.TypeTCF, signals.TypeGPP, signals.TypeUSP, signals.TypeConsentMode}

// Any reports whether at least one signal is given.
func (f SignalFlags) Any() bool {
	for _, vs := range f.Repeated {
		if len(vs) > 0 {
			return true
		}
	}
	return f.TCF != "" || f.GPP != "" || f.USP != "" || f.GPC || f.ConsentMode != ""
}

// Submission builds the signals.Submission of the flags, for subject, with
// captured_at defaulting to now. The signals come in a fixed order (tcf,
// gpp, usp, gpc, consent_mode; of one type the field's value, then its
// Repeated values), so that the same flags make the same submission. A
// Consent Mode list that does not read, an empty or misfiled Repeated
// value, or a jurisdiction that is not a country or subdivision code, is
// an error; the signals themselves are decoded by signals.Decode.
func (f SignalFlags) Submission(subject string, now time.Time) (signals.Submission, error) {
	sub := signals.Submission{SubjectID: subject, CapturedAt: f.CapturedAt, Jurisdiction: f.Jurisdiction}
	if sub.CapturedAt.IsZero() {
		sub.CapturedAt = now
	}
	sub.CapturedAt = time.UnixMilli(sub.CapturedAt.UnixMilli()).UTC()
	if f.Jurisdiction != "" {
		// The check consent-sync's POST /v1/consent-signals makes.
		if err := policy.CheckJurisdiction(f.Jurisdiction); err != nil {
			return sub, fmt.Errorf("jurisdiction %v", err)
		}
	}
	for typ := range f.Repeated {
		if !slices.Contains(repeatable, typ) {
			return sub, fmt.Errorf("signal type %q cannot be repeated: the repeatable types are %s", typ, strings.Join(repeatable, ", "))
		}
	}
	add := func(typ, first string) error {
		values := f.Repeated[typ]
		if first != "" {
			values = append([]string{first}, values...)
		}
		for _, v := range values {
			if v == "" {
				return fmt.Errorf("an empty %s signal", typ)
			}
			sig := signals.Signal{Type: typ, Value: v}
			if typ == signals.TypeConsentMode {
				states, err := ParseConsentModeFlag(v)
				if err != nil {
					return err
				}
				sig = signals.Signal{Type: typ, States: states}
			}
			sub.Signals = append(sub.Signals, sig)
		}
		return nil
	}
	for _, field := range []struct{ typ, first string }{{signals.TypeTCF, f.TCF}, {signals.TypeGPP, f.GPP}, {signals.TypeUSP, f.USP}} {
		if err := add(field.typ, field.first); err != nil {
			return sub, err
		}
	}
	if f.GPC {
		sub.Signals = append(sub.Signals, signals.Signal{Type: signals.TypeGPC, Value: "1"})
	}
	if err := add(signals.TypeConsentMode, f.ConsentMode); err != nil {
		return sub, err
	}
	return sub, nil
}

// ParseConsentModeFlag reads Consent Mode states written as
// "state=value,state=value" (spaces around the parts are ignored). A part
// without "=", or a state given twice, is an error; the state names and
// values are checked by signals.Decode. Errors name the state, never a
// value.
func ParseConsentModeFlag(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok || k == "" || v == "":
			return nil, fmt.Errorf("consent mode: part %d: want state=granted or state=denied, such as ad_user_data=granted", i+1)
		case out[k] != "":
			if !slices.Contains(policy.ConsentModeStates, k) {
				return nil, fmt.Errorf("consent mode: part %d: a state given twice", i+1)
			}
			return nil, fmt.Errorf("consent mode: state %s given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// SignalsReport is what the signals of an explain request decide, before
// the streams' decisions (which use the consent state they produce).
type SignalsReport struct {
	// Types are the signal types sent, in submission order.
	Types        []string  `json:"types"`
	Jurisdiction string    `json:"jurisdiction,omitempty"`
	CapturedAt   time.Time `json:"captured_at"`
	// IgnoredSections are GPP section ids that were read but that no
	// catalogue field covers.
	IgnoredSections []int `json:"ignored_gpp_sections,omitempty"`
	// Purposes has one entry per purpose of the policy, in its order.
	Purposes []SignalPurpose `json:"purposes"`
}

// SignalPurpose is what the signals decide for one purpose.
type SignalPurpose struct {
	Purpose string `json:"purpose"`
	// Decided is false when no signal decides the purpose: its consent
	// stays what it was (the consent file's, or none).
	Decided bool `json:"decided"`
	// Action is GRANT, DENY or WITHDRAW.
	Action     consent.Action `json:"action,omitempty"`
	LegalBasis string         `json:"legal_basis,omitempty"`
	// Excluded are the categories a GRANT leaves out.
	Excluded []string `json:"excluded_categories,omitempty"`
	// Sources and Fields are the deciding sources and fields
	// ("tcf.purpose.1=allow").
	Sources []string `json:"sources,omitempty"`
	Fields  []string `json:"fields,omitempty"`
	// ChangeID is the id of the consent change consent-sync would produce.
	ChangeID   string     `json:"change_id,omitempty"`
	CapturedAt *time.Time `json:"captured_at,omitempty"`
	// Applied is false when the consent state already holds a newer
	// change for the purpose, or an erasure newer than the change: the
	// change then does not alter the state (newest captured_at wins); and
	// when consent-sync's clock rule refuses the change (Refused).
	Applied bool `json:"applied"`
	// Refused says why consent-sync's clock rule refuses the change (a
	// GRANT dated too far ahead of the decision time, signals.BoundChanges):
	// it is not recorded, while the submission's other changes are.
	// CapturedAt is then the time the signals claim.
	Refused string `json:"refused,omitempty"`
	// Note says what the state keeps when the signals decide nothing or
	// the change loses, and when the clock rule moved the change's time.
	Note string `json:"note,omitempty"`
}

// EvaluateSignals decodes sub, evaluates it by the policy's signals
// section (signals.Evaluate, signals.ChangesFrom: the change ids
// consent-sync gives) and returns the report and the consent state the
// enforcer would see once consent-sync stored the changes on top of base
// (the consent file's state; nil for none). A signal that does not decode
// is an error and nothing is returned. The changes pass consent-sync's
// checks as its intake makes them: consent.Change.Validate, then the clock
// rule per change (signals.BoundChanges, with now as the time they reach
// the pipeline): a GRANT dated too far ahead is refused and reported
// (SignalPurpose.Refused), the other changes are kept and applied, a
// restrictive change dated ahead moved back. When the rule refuses every
// change, consent-sync refuses the submission (400) and so does
// EvaluateSignals (an error). base is not modified.
func EvaluateSignals(pol *policy.Policy, sub signals.Submission, base *consent.State, now time.Time) (*SignalsReport, *consent.State, error) {
	d, err := signals.Decode(sub)
	if err != nil {
		return nil, nil, err
	}
	rep := &SignalsReport{Jurisdiction: sub.Jurisdiction, CapturedAt: sub.CapturedAt.UTC(), IgnoredSections: d.Ignored, Purposes: []SignalPurpose{}}
	for _, s := range sub.Signals {
		rep.Types = append(rep.Types, s.Type)
	}
	outcomes := signals.Evaluate(pol, d, sub.Jurisdiction)
	changes := signals.ChangesFrom(pol, sub, d)
	if len(changes) != len(outcomes) {
		return nil, nil, fmt.Errorf("signals: %d outcomes but %d changes", len(outcomes), len(changes))
	}
	for i, c := range changes {
		if c.Purpose != outcomes[i].Purpose {
			return nil, nil, fmt.Errorf("signals: change %d is for %s, outcome for %s", i, c.Purpose, outcomes[i].Purpose)
		}
		if err := c.Validate(); err != nil {
			return nil, nil, fmt.Errorf("signals: the change for %s is not valid: %w", c.Purpose, err)
		}
	}
	kept, refused := signals.BoundChanges(changes, now, consent.DefaultMaxClockSkew)
	if len(kept) == 0 && len(refused) > 0 {
		var why []string
		for _, r := range refused {
			why = append(why, "the "+r.Purpose+" grant: "+r.Reason)
		}
		return nil, nil, fmt.Errorf("signals: consent-sync refuses the submission (400), its clock rule refuses every change: %s", strings.Join(why, "; "))
	}
	bound := map[string]consent.Change{}
	for _, c := range kept {
		bound[c.Purpose] = c
	}
	refusedWhy := map[string]string{}
	for _, r := range refused {
		refusedWhy[r.Purpose] = r.Reason
	}
	st := cloneState(base, sub.SubjectID)
	byPurpose := map[string]int{}
	for i, o := range outcomes {
		byPurpose[o.Purpose] = i
	}
	for _, pu := range pol.Purposes {
		i, ok := byPurpose[pu.ID]
		if !ok {
			rep.Purposes = append(rep.Purposes, SignalPurpose{Purpose: pu.ID, Note: undecidedNote(pu, st, now)})
			continue
		}
		o, c := outcomes[i], changes[i]
		sp := SignalPurpose{Purpose: pu.ID, Decided: true, Action: o.Action, LegalBasis: o.LegalBasis, Excluded: o.Excluded,
			Sources: o.Sources, Fields: o.Fields, ChangeID: c.ChangeID}
		b, ok := bound[pu.ID]
		if !ok {
			sp.Refused = refusedWhy[pu.ID]
			t := c.CapturedAt.UTC()
			sp.CapturedAt = &t
			sp.Note = "not applied: consent-sync's clock rule refuses this change (" + sp.Refused + "); the submission's other changes are recorded"
			rep.Purposes = append(rep.Purposes, sp)
			continue
		}
		if !b.CapturedAt.Equal(c.CapturedAt) {
			sp.Note = "captured_at lies after the decision time: consent-sync's clock rule moves it to " + b.CapturedAt.UTC().Format(timeMilli)
		}
		t := b.CapturedAt.UTC()
		sp.CapturedAt = &t
		if lost := apply(st, b); lost != "" {
			sp.Note = joinNote(sp.Note, lost)
		} else {
			sp.Applied = true
		}
		rep.Purposes = append(rep.Purposes, sp)
	}
	if len(st.Purposes) == 0 && st.ErasedAt.IsZero() && st.ErasedBy == "" {
		st = nil // nothing stored: unknown subject, as before
	}
	return rep, st, nil
}

const timeMilli = "2006-01-02T15:04:05.000Z07:00"

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// cloneState copies base (nil: an empty state of subject), so that the
// changes apply to a copy.
func cloneState(base *consent.State, subject string) *consent.State {
	if base == nil {
		return &consent.State{SubjectID: subject, Purposes: map[string]consent.PurposeState{}}
	}
	st := *base
	st.Purposes = maps.Clone(base.Purposes)
	if st.Purposes == nil {
		st.Purposes = map[string]consent.PurposeState{}
	}
	return &st
}

// apply stores change c in st as consent.Store.ApplyWith does: the state
// the change leaves (consent.PurposeStateOf) replaces the purpose's when c
// is newer than it and than the erasure tombstone (later captured_at in
// milliseconds, ties broken by the greater change id). It returns why the
// change lost, or "" when it was applied.
//
// The order is restated here because package consent keeps it unexported
// (its store applies it in Redis); see newerChange.
func apply(st *consent.State, c consent.Change) string {
	ps, ok := consent.PurposeStateOf(c)
	if !ok {
		return "not a purpose change"
	}
	if (!st.ErasedAt.IsZero() || st.ErasedBy != "") && !newerChange(ps.CapturedAt, ps.ChangeID, st.ErasedAt, st.ErasedBy) {
		return "not applied: the erasure " + st.ErasedBy + " (captured " + st.ErasedAt.UTC().Format(timeMilli) + ") is newer"
	}
	if old, ok := st.Purposes[c.Purpose]; ok && !newerChange(ps.CapturedAt, ps.ChangeID, old.CapturedAt, old.ChangeID) {
		return "not applied: the consent file's change " + old.ChangeID + " (" + string(old.Status) + ", captured " +
			old.CapturedAt.UTC().Format(timeMilli) + ") is newer and stays"
	}
	st.Purposes[c.Purpose] = ps
	return ""
}

// newerChange reports whether change (t1, id1) wins over (t2, id2): a
// later captured_at in milliseconds, or the same millisecond and a greater
// change id byte-wise — the order of package consent (State.Check, the
// store's script).
func newerChange(t1 time.Time, id1 string, t2 time.Time, id2 string) bool {
	if a, b := t1.UnixMilli(), t2.UnixMilli(); a != b {
		return a > b
	}
	return id1 > id2
}

// undecidedNote says what a purpose no signal decides keeps, as the
// engine reads the state at now (consent.State.Check): the consent file's
// change for it, or, when there is none or an erasure hides it, never
// asked (an opt-out purpose is then allowed until the customer objects,
// decision.ReasonOptOutNotExercised) or erased (not allowed, opt-out or
// not: the erasure takes the objection-free default away too).
func undecidedNote(pu policy.Purpose, st *consent.State, now time.Time) string {
	const none = "no signal decides it: consent unchanged"
	v := st.Check(pu.ID, now)
	ps, has := st.Purposes[pu.ID]
	switch v.Reason {
	case consent.ReasonErased:
		note := none + ", not allowed: the erasure " + st.ErasedBy + " (captured " + st.ErasedAt.UTC().Format(timeMilli) + ") is newer than any consent to it"
		if has {
			note += " (the consent file's change " + ps.ChangeID + ", " + string(ps.Status) + ", is older and hidden)"
		}
		return note
	case consent.ReasonNeverAsked, consent.ReasonUnknownSubject:
		if pu.OptOut {
			return none + ", opt-out purpose: allowed until the customer objects"
		}
		return none + ", deny by default"
	case consent.ReasonChangeIDTooLong:
		return none + ", not allowed: the stored change id is longer than consent-sync accepts"
	}
	note := none + " (" + string(ps.Status) + " by the consent file's change " + ps.ChangeID
	if v.Reason == consent.ReasonExpired {
		note += ", expired " + ps.ExpiresAt.UTC().Format(timeMilli)
	}
	return note + ")"
}

// writeText prints the report for people, before the streams.
func (r *SignalsReport) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "\nconsent from signals: %s", strings.Join(r.Types, ", "))
	if r.Jurisdiction != "" {
		fmt.Fprintf(b, " (jurisdiction %s", r.Jurisdiction)
	} else {
		b.WriteString(" (jurisdiction not known: rules limited to jurisdictions only take consent away")
	}
	fmt.Fprintf(b, "; captured %s)\n", r.CapturedAt.Format(timeMilli))
	if len(r.IgnoredSections) > 0 {
		ids := make([]string, len(r.IgnoredSections))
		for i, id := range r.IgnoredSections {
			ids[i] = fmt.Sprint(id)
		}
		fmt.Fprintf(b, "  note: GPP sections %s were read but no signals rule can map them\n", strings.Join(ids, ", "))
	}
	if !slices.ContainsFunc(r.Purposes, func(p SignalPurpose) bool { return p.Decided }) {
		b.WriteString("  note: the signals decide no purpose: consent-sync records nothing (200)\n")
	}
	for _, p := range r.Purposes {
		if !p.Decided {
			fmt.Fprintf(b, "  %s: %s\n", p.Purpose, p.Note)
			continue
		}
		fmt.Fprintf(b, "  %s: %s", p.Purpose, p.Action)
		if p.Action == consent.ActionGrant {
			fmt.Fprintf(b, ", legal basis %s", p.LegalBasis)
			if len(p.Excluded) > 0 {
				fmt.Fprintf(b, ", excluded categories %s", strings.Join(p.Excluded, ", "))
			} else {
				b.WriteString(", no excluded categories")
			}
		}
		b.WriteString("\n")
		fmt.Fprintf(b, "    decided by: %s (%s)\n", strings.Join(p.Sources, ", "), strings.Join(p.Fields, ", "))
		fmt.Fprintf(b, "    change:     %s", p.ChangeID)
		if p.CapturedAt != nil {
			fmt.Fprintf(b, ", captured %s", p.CapturedAt.Format(timeMilli))
		}
		b.WriteString("\n")
		if p.Note != "" {
			fmt.Fprintf(b, "    note:       %s\n", p.Note)
		}
	}
}
