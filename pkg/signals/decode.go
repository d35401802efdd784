package signals

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// Signal types a submission may carry.
const (
	TypeTCF         = "tcf"          // an IAB TCF v2.2 / v2.3 TC string
	TypeGPP         = "gpp"          // an IAB GPP string
	TypeUSP         = "usp"          // an IAB US Privacy (CCPA) string, "1YNN"
	TypeGPC         = "gpc"          // the Sec-GPC header value: "1"
	TypeConsentMode = "consent_mode" // Google Consent Mode v2 states
)

// Types lists the signal types, in documentation order.
var Types = []string{TypeTCF, TypeGPP, TypeUSP, TypeGPC, TypeConsentMode}

// Consent Mode state values.
const (
	Granted = "granted"
	Denied  = "denied"
)

// MaxSignals bounds the signals of one submission.
const MaxSignals = 16

// ErrMalformed is the class of every error Decode returns: errors.Is(err,
// ErrMalformed) holds for a signal that cannot be read, an unknown type or
// an empty submission. Nothing of such a submission is used.
var ErrMalformed = errors.New("malformed consent signal")

// Error is a problem with one signal of a submission. The reason never
// repeats the signal's text.
type Error struct {
	// Index is the position of the signal in the submission (0-based), -1
	// for a problem of the submission as a whole.
	Index int
	// Type is the signal's type, as sent (Error shows it only when it is
	// one of Types).
	Type string
	// Err says what is wrong (for TCF and GPP strings, the decoder's
	// *tcf.ParseError / *gpp.ParseError).
	Err error
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return "signals: " + e.Err.Error()
	}
	typ := e.Type
	if !slices.Contains(Types, typ) {
		typ = "unknown type" // never repeat what was sent
	}
	return fmt.Sprintf("signals[%d] (%s): %v", e.Index, typ, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes every *Error match ErrMalformed.
func (e *Error) Is(target error) bool { return target == ErrMalformed }

// Signal is one consent signal as a caller sends it.
type Signal struct {
	// Type is one of Types.
	Type string
	// Value is the signal's text: the TC string, the GPP string, the USP
	// string, or the Sec-GPC header value ("1"). Empty for consent_mode.
	Value string
	// States are the Consent Mode states (consent_mode only): any of
	// ad_storage, analytics_storage, ad_user_data, ad_personalization,
	// each "granted" or "denied". A state not given says nothing.
	States map[string]string
}

// Submission is what one customer's consent signals say at one moment.
type Submission struct {
	// SubjectID is the customer.
	SubjectID string
	// CapturedAt is when the customer gave the signals (the consent
	// banner's or the request's time).
	CapturedAt time.Time
	// Jurisdiction is where the customer is, as policy.MatchJurisdiction
	// reads it ("DE", "US-CA"); empty when not known. Rules limited to
	// jurisdictions then only take consent away, never grant it.
	Jurisdiction string
	// NoticeVersion names the privacy notice the customer saw, if the
	// caller knows it; it prefixes the notice version of every change.
	NoticeVersion string
	// Signals are the signals, at least one.
	Signals []Signal
}

// Decoded holds the decoded signals of a submission, by source.
type Decoded struct {
	// TCF are the TC strings: sent as type tcf, or carried by a GPP
	// string's tcfeuv2 section.
	TCF []*tcf.TCString
	// GPP are the supported sections of the GPP strings and the USP
	// strings (as section uspv1), in the order sent.
	GPP []gpp.Section
	// GPC is true when a Sec-GPC signal said "1".
	GPC bool
	// ConsentMode holds the Consent Mode states sent; nil when none.
	ConsentMode map[string]string
	// Ignored names the GPP sections that were read but that no field of
	// the catalogue covers (for example tcfcav1), by section id.
	Ignored []int
}

// Present reports whether the submission carried the source (as
// policy.SignalSources names them).
func (d *Decoded) Present(source string) bool {
	switch source {
	case "tcf":
		return len(d.TCF) > 0
	case "gpc":
		return d.GPC
	case "consent_mode":
		return d.ConsentMode != nil
	}
	name, ok := strings.CutPrefix(source, "gpp.")
	if !ok {
		return false
	}
	return slices.ContainsFunc(d.GPP, func(s gpp.Section) bool { return s.Name == name })
}

// Decode reads every signal of the submission. Any problem (an unknown
// type, a string that does not decode, an unknown Consent Mode state) is an
// *Error and nothing is returned: a submission is used whole or not at all.
func Decode(sub Submission) (*Decoded, error) {
	if len(sub.Signals) == 0 {
		return nil, &Error{Index: -1, Err: errors.New("no signals: send at least one")}
	}
	if len(sub.Signals) > MaxSignals {
		return nil, &Error{Index: -1, Err: fmt.Errorf("%d signals: at most %d in one submission", len(sub.Signals), MaxSignals)}
	}
	d := &Decoded{}
	for i, s := range sub.Signals {
		if err := d.add(s); err != nil {
			return nil, &Error{Index: i, Type: s.Type, Err: err}
		}
	}
	return d, nil
}

func (d *Decoded) add(s Signal) error {
	if s.Type != TypeConsentMode && s.States != nil {
		return fmt.Errorf("states are only for %s signals", TypeConsentMode)
	}
	switch s.Type {
	case TypeTCF:
		t, err := tcf.Parse(s.Value)
		if err != nil {
			return err
		}
		if err := checkTCF(t); err != nil {
			return err
		}
		d.TCF = append(d.TCF, t)
	case TypeGPP:
		g, err := gpp.Parse(s.Value)
		if err != nil {
			return err
		}
		for _, sec := range g.Sections {
			switch {
			case sec.ID == 2:
				t, err := tcf.Parse(sec.TCF)
				if err == nil {
					err = checkTCF(t)
				}
				if err != nil {
					return fmt.Errorf("gpp section tcfeuv2: %w", err)
				}
				d.TCF = append(d.TCF, t)
			case sec.Name != "" && slices.Contains(gpp.SectionNames(), sec.Name):
				d.GPP = append(d.GPP, sec)
			default:
				d.Ignored = append(d.Ignored, sec.ID)
			}
		}
	case TypeUSP:
		u, err := gpp.ParseUSP(s.Value)
		if err != nil {
			return err
		}
		d.GPP = append(d.GPP, uspSection(u))
	case TypeGPC:
		on, err := ParseGPC(s.Value)
		if err != nil {
			return err
		}
		d.GPC = d.GPC || on
	case TypeConsentMode:
		if s.Value != "" {
			return errors.New("a consent_mode signal carries states, not a value")
		}
		states, err := ParseConsentMode(s.States)
		if err != nil {
			return err
		}
		if d.ConsentMode == nil {
			d.ConsentMode = map[string]string{}
		}
		for k, v := range states {
			// Two Consent Mode signals: a denial in either wins.
			if old, ok := d.ConsentMode[k]; !ok || old == Granted {
				d.ConsentMode[k] = v
			}
		}
	default:
		return fmt.Errorf("unknown signal type: the types are %s", strings.Join(Types, ", "))
	}
	return nil
}

// checkTCF refuses TC strings that decode but that the TCF policy no
// longer lets carry consent: a TCF policy version before 4 (TCF v2.0 and
// v2.1 strings, invalid since 30 September 2023) and a global-scope string
// (IsServiceSpecific 0, invalid since TCF v2.2). Reading their bits as
// consent would grant on a signal the framework itself says is void.
func checkTCF(t *tcf.TCString) error {
	switch {
	case t.PolicyVersion > 5:
		return fmt.Errorf("tcf: unknown TCF policy version %d: this build reads versions 4 (TCF v2.2) and 5 (TCF v2.3)", t.PolicyVersion)
	case t.PolicyVersion < 4:
		return fmt.Errorf("tcf: TCF policy version %d: strings before version 4 (TCF v2.2) carry no valid consent; the CMP must be updated", t.PolicyVersion)
	case t.Created.Before(tcfEpoch) || t.LastUpdated.Before(tcfEpoch):
		return errors.New("tcf: Created or LastUpdated is before 2019, when TCF v2 did not exist: the string's dates are wrong")
	case !t.IsServiceSpecific:
		return errors.New("tcf: a global-scope TC string (IsServiceSpecific 0) carries no valid consent since TCF v2.2")
	}
	return nil
}

// tcfEpoch bounds the dates of a TC string from below: TCF v2 was
// published in 2019. A decision read from a TC string is dated by its
// LastUpdated, so an impossible date is refused rather than used.
var tcfEpoch = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)

// uspSection gives a USP string the shape of the GPP section that carries
// it (uspv1), so that gpp.uspv1.* rules read both alike.
func uspSection(u gpp.USP) gpp.Section {
	v := 0
	switch u.OptOutSale {
	case 'Y':
		v = 1
	case 'N':
		v = 2
	}
	return gpp.Section{ID: 6, Name: "uspv1", Version: u.Version, Fields: map[string]int{"sale_opt_out": v}}
}

// ParseGPC reads a Sec-GPC header value. The GPC specification defines
// one value, "1": the customer asks not to have their data sold or shared.
// "0" (which some clients send) says nothing; any other value is an error.
func ParseGPC(v string) (bool, error) {
	switch strings.TrimSpace(v) {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, errors.New(`a Sec-GPC value is "1" (or "0" for no signal)`)
}

// ParseConsentMode checks Google Consent Mode v2 states: the keys are among
// policy.ConsentModeStates, the values "granted" or "denied". It returns a
// copy. At least one state must be given.
func ParseConsentMode(states map[string]string) (map[string]string, error) {
	if len(states) == 0 {
		return nil, fmt.Errorf("no states: give at least one of %s", strings.Join(policy.ConsentModeStates, ", "))
	}
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(states))
	for _, k := range keys {
		if !slices.Contains(policy.ConsentModeStates, k) {
			return nil, fmt.Errorf("unknown Consent Mode state (the states are %s)", strings.Join(policy.ConsentModeStates, ", "))
		}
		v := states[k]
		if v != Granted && v != Denied {
			return nil, fmt.Errorf("Consent Mode state %s is neither granted nor denied", k)
		}
		out[k] = v
	}
	return out, nil
}
