package consent

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Action is what a consent change does. The values are the symbols of the
// ConsentAction enum of schemas/consent_change.avsc.
type Action string

// The actions of a consent change.
const (
	// ActionGrant gives consent for one purpose (optionally excluding data
	// categories, optionally until ExpiresAt).
	ActionGrant Action = "GRANT"
	// ActionDeny refuses one purpose. A denial is not allowed, and is kept
	// distinct from "never asked".
	ActionDeny Action = "DENY"
	// ActionWithdraw takes back an earlier grant for one purpose.
	ActionWithdraw Action = "WITHDRAW"
	// ActionErase is an erasure request for the whole subject: every purpose
	// is forgotten and a tombstone is kept so that older changes arriving
	// late cannot bring consent back.
	ActionErase Action = "ERASE"
)

// Valid reports whether a is one of the four defined actions.
func (a Action) Valid() bool {
	switch a {
	case ActionGrant, ActionDeny, ActionWithdraw, ActionErase:
		return true
	}
	return false
}

// LegalBasis is the GDPR article 6 ground a change relies on. The values are
// the symbols of the LegalBasis enum of schemas/consent_change.avsc.
type LegalBasis string

// The legal bases of a consent change.
const (
	BasisConsent            LegalBasis = "CONSENT"
	BasisLegitimateInterest LegalBasis = "LEGITIMATE_INTEREST"
	BasisContract           LegalBasis = "CONTRACT"
)

// Valid reports whether b is one of the three defined legal bases.
func (b LegalBasis) Valid() bool {
	switch b {
	case BasisConsent, BasisLegitimateInterest, BasisContract:
		return true
	}
	return false
}

// ReservedPrefix starts the hash fields the store keeps for itself (such as the
// erasure tombstone); no purpose id may start with it.
const ReservedPrefix = "!"

// Change is one consent change: the Go form of the ConsentChange Avro record
// (schemas/consent_change.avsc) read from the consent.changes topic, which is
// the system of record.
//
// Times are kept to the millisecond, the precision of timestamp-millis;
// [ChangeFromNative] produces UTC times and the [Store] compares integer
// milliseconds, so sub-millisecond parts of times built in Go are ignored.
type Change struct {
	// ChangeID uniquely identifies the change. Between two changes captured
	// in the same millisecond, the greater ChangeID (byte-wise string
	// comparison) wins.
	ChangeID string
	// SubjectID is the customer the change is about. It is personal data:
	// it never appears in errors or logs.
	SubjectID string
	// Purpose is the purpose id from the policy catalogue. It is empty only
	// for ERASE (and ignored there: an erasure covers every purpose).
	Purpose string
	// Action is what the change does.
	Action Action
	// LegalBasis is required on GRANT; optional (may be empty) otherwise.
	LegalBasis LegalBasis
	// ExcludedCategories lists data categories, or patterns such as
	// "user.health.*", that a grant leaves out.
	ExcludedCategories []string
	// Source says who captured the change, e.g. "preference-centre".
	Source string
	// NoticeVersion is the version of the privacy notice the customer saw.
	NoticeVersion string
	// CapturedAt is when the customer made the change. The newest change
	// per subject and purpose wins.
	CapturedAt time.Time
	// ExpiresAt is when a grant stops being valid; zero means no expiry.
	// It is only meaningful on GRANT and ignored by Check otherwise.
	ExpiresAt time.Time
}

// ErrInvalidChange matches (with errors.Is) every error returned by
// [Change.Validate] and [ChangeFromNative]. Such a change is permanently bad:
// retrying cannot fix it, so a consumer sends it to its dead-letter topic.
var ErrInvalidChange = errors.New("invalid consent change")

// FieldError is one problem with one field of a change. Its message names the
// field (by its Avro name) and the problem, never the field's value.
// errors.Is(err, ErrInvalidChange) is true for every FieldError.
type FieldError struct {
	// Field is the Avro field name, e.g. "captured_at".
	Field string
	// Problem says what is wrong, without the value.
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Is makes errors.Is(err, ErrInvalidChange) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidChange }

func fieldErr(field, problem string) error { return &FieldError{Field: field, Problem: problem} }

// Validate reports every problem of c at once (joined with errors.Join), each
// a *[FieldError] naming the field. It returns nil for a valid change.
//
// The rules are strict where a change gives something and lenient where it
// takes something away, so that a withdrawal or erasure with sloppy metadata
// is still honoured (deny by default):
//
//   - every change needs change_id, subject_id, a known action and a
//     captured_at after the Unix epoch; legal_basis, when set, must be known;
//     excluded_categories must not hold empty strings;
//   - GRANT, DENY and WITHDRAW need a purpose, which must not start with
//     [ReservedPrefix];
//   - GRANT also needs a legal_basis, a source and a notice_version, and an
//     expires_at, when set, later than captured_at.
func (c Change) Validate() error {
	var errs []error
	if c.ChangeID == "" {
		errs = append(errs, fieldErr("change_id", "is empty"))
	}
	if c.SubjectID == "" {
		errs = append(errs, fieldErr("subject_id", "is empty"))
	}
	if !c.Action.Valid() {
		errs = append(errs, fieldErr("action", "is not one of GRANT, DENY, WITHDRAW, ERASE"))
	}
	if c.Action != ActionErase {
		switch {
		case c.Purpose == "":
			errs = append(errs, fieldErr("purpose", "is empty; only ERASE may omit it"))
		case strings.HasPrefix(c.Purpose, ReservedPrefix):
			errs = append(errs, fieldErr("purpose", fmt.Sprintf("starts with the reserved %q", ReservedPrefix)))
		}
	}
	if c.LegalBasis != "" && !c.LegalBasis.Valid() {
		errs = append(errs, fieldErr("legal_basis", "is not one of CONSENT, LEGITIMATE_INTEREST, CONTRACT"))
	}
	for _, cat := range c.ExcludedCategories {
		if cat == "" {
			errs = append(errs, fieldErr("excluded_categories", "holds an empty category"))
			break
		}
	}
	if c.CapturedAt.UnixMilli() <= 0 {
		errs = append(errs, fieldErr("captured_at", "is not after the Unix epoch"))
	}
	if c.Action == ActionGrant {
		if c.LegalBasis == "" {
			errs = append(errs, fieldErr("legal_basis", "is empty; a GRANT needs one"))
		}
		if c.Source == "" {
			errs = append(errs, fieldErr("source", "is empty; a GRANT needs one"))
		}
		if c.NoticeVersion == "" {
			errs = append(errs, fieldErr("notice_version", "is empty; a GRANT needs one"))
		}
		if !c.ExpiresAt.IsZero() && c.ExpiresAt.UnixMilli() <= c.CapturedAt.UnixMilli() {
			errs = append(errs, fieldErr("expires_at", "is not after captured_at"))
		}
	}
	return errors.Join(errs...)
}

// ChangeFromNative converts a ConsentChange record decoded by goavro
// (codec.NativeFromBinary and friends) into a Change.
//
// It accepts what goavro v2 produces for schemas/consent_change.avsc: records
// as map[string]any, enums as string, arrays as []any, timestamp-millis as
// time.Time, and non-null unions wrapped as map[string]any{"string": v} or
// map[string]any{"long.timestamp-millis": t}. It also accepts unwrapped union
// values, []string arrays and int64 milliseconds, so that values built by hand
// or decoded with a compatible reader schema work too. A missing optional
// field (purpose, legal_basis, excluded_categories, expires_at) takes the
// schema default.
//
// Errors are *[FieldError] values joined together, naming the fields only.
// The result is not validated: call [Change.Validate].
func ChangeFromNative(m map[string]any) (Change, error) {
	var (
		c    Change
		errs []error
	)
	str := func(name string, required bool) string {
		v, ok := m[name]
		if !ok || v == nil {
			if required {
				errs = append(errs, fieldErr(name, "is missing"))
			}
			return ""
		}
		s, err := unionString(v)
		if err != nil {
			errs = append(errs, fieldErr(name, err.Error()))
		}
		return s
	}
	tm := func(name string, required bool) time.Time {
		v, ok := m[name]
		if !ok || v == nil {
			if required {
				errs = append(errs, fieldErr(name, "is missing"))
			}
			return time.Time{}
		}
		t, err := unionTime(v)
		if err != nil {
			errs = append(errs, fieldErr(name, err.Error()))
		}
		return t
	}
	c.ChangeID = str("change_id", true)
	c.SubjectID = str("subject_id", true)
	c.Purpose = str("purpose", false)
	c.Action = Action(str("action", true))
	c.LegalBasis = LegalBasis(str("legal_basis", false))
	if _, ok := m["legal_basis"]; !ok {
		c.LegalBasis = BasisConsent // the schema default
	}
	c.Source = str("source", true)
	c.NoticeVersion = str("notice_version", true)
	c.CapturedAt = tm("captured_at", true)
	c.ExpiresAt = tm("expires_at", false)
	if v, ok := m["excluded_categories"]; ok && v != nil {
		cats, err := stringList(v)
		if err != nil {
			errs = append(errs, fieldErr("excluded_categories", err.Error()))
		}
		c.ExcludedCategories = cats
	}
	if len(errs) > 0 {
		return Change{}, errors.Join(errs...)
	}
	return c, nil
}

// Native returns c in goavro's native form for the ConsentChange schema, ready
// for codec.BinaryFromNative. It round-trips with [ChangeFromNative] (times
// come back in UTC, truncated to the millisecond; a nil ExcludedCategories
// comes back nil). An empty LegalBasis is written as CONSENT, the schema
// default, because the Avro enum has no empty symbol.
func (c Change) Native() map[string]any {
	cats := make([]any, len(c.ExcludedCategories))
	for i, s := range c.ExcludedCategories {
		cats[i] = s
	}
	basis := c.LegalBasis
	if basis == "" {
		basis = BasisConsent
	}
	m := map[string]any{
		"change_id":           c.ChangeID,
		"subject_id":          c.SubjectID,
		"purpose":             nil,
		"action":              string(c.Action),
		"legal_basis":         string(basis),
		"excluded_categories": cats,
		"source":              c.Source,
		"notice_version":      c.NoticeVersion,
		"captured_at":         c.CapturedAt,
		"expires_at":          nil,
	}
	if c.Purpose != "" {
		m["purpose"] = map[string]any{"string": c.Purpose}
	}
	if !c.ExpiresAt.IsZero() {
		m["expires_at"] = map[string]any{"long.timestamp-millis": c.ExpiresAt}
	}
	return m
}

// unwrapUnion returns the single value of a goavro union wrapper, or v itself.
func unwrapUnion(v any) any {
	if u, ok := v.(map[string]any); ok && len(u) == 1 {
		for _, inner := range u {
			return inner
		}
	}
	return v
}

func unionString(v any) (string, error) {
	switch x := unwrapUnion(v).(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("has type %T, want string", x)
	}
}

func unionTime(v any) (time.Time, error) {
	switch x := unwrapUnion(v).(type) {
	case time.Time:
		return x.Truncate(time.Millisecond).UTC(), nil
	case int64:
		return time.UnixMilli(x).UTC(), nil
	case nil:
		return time.Time{}, nil
	default:
		return time.Time{}, fmt.Errorf("has type %T, want timestamp-millis", x)
	}
}

func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case []string:
		if len(x) == 0 {
			return nil, nil
		}
		return append([]string(nil), x...), nil
	case []any:
		if len(x) == 0 {
			return nil, nil
		}
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("item %d has type %T, want string", i, e)
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, fmt.Errorf("has type %T, want array of string", v)
	}
}

// DefaultMaxClockSkew is how far a change's captured_at may lie after the
// moment it reached the pipeline (see [Change.CheckCapturedBefore]).
const DefaultMaxClockSkew = 15 * time.Minute

// CheckCapturedBefore rejects a change captured more than skew after
// received, the time it reached the pipeline (the Kafka record's timestamp,
// or the intake's clock). Newest captured_at wins for ever, so a change
// dated in the future, from a wrong clock or a forged request, would
// otherwise override every real change made until then. Comparing with the
// record's own timestamp, not the wall clock, keeps a rebuild's verdict
// equal to the live one. A zero received time checks nothing.
func (c Change) CheckCapturedBefore(received time.Time, skew time.Duration) error {
	if received.IsZero() || !c.CapturedAt.After(received.Add(skew)) {
		return nil
	}
	return fieldErr("captured_at", fmt.Sprintf("lies more than %s after the change reached the pipeline: check the clock of whatever captured it", skew))
}
