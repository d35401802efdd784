package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/consentgate/consentgate/pkg/policy"
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

// MaxIDBytes bounds, in bytes, every id the pipeline carries into its audit
// records, keys and headers: a consent change's change_id and subject_id
// ([Change.Validate]) and an event's event_id and subject_id (the enforcer
// dead-letters an event with a longer one as id_too_long). An id is copied
// into several places of an audit record (its value, its key, a header), so
// an unbounded one would let a producer make an audit record no topic
// takes; 256 bytes leaves room for any UUID, ULID or URN-style id.
const MaxIDBytes = 256

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
	// ExcludedCategories lists the data categories that a grant leaves
	// out: each a node x of the taxonomy (policy.Categories), written "x"
	// or "x.*", both meaning x and everything below it.
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
//   - change_id and subject_id are at most [MaxIDBytes] bytes long, on
//     every action: they are copied into audit records, notices, keys and
//     headers, which must stay small (a revocation with an over-long id is
//     refused too: the intake answers 400 so that its sender resends it
//     with a proper id);
//   - a GRANT's change_id must be at most [MaxGrantIDBytes] bytes, valid
//     UTF-8 and without U+10FFFF (the mark of a bounded id, see
//     [BoundChangeID]);
//   - GRANT, DENY and WITHDRAW need a purpose, which must not start with
//     [ReservedPrefix];
//   - GRANT also needs a legal_basis, a source and a notice_version, an
//     expires_at, when set, later than captured_at, and excluded_categories
//     that each name a node x of the data category taxonomy
//     ([policy.Categories]), written "x" or "x.*" (both mean x and every
//     category below it; see [policy.CheckExclusion]). An exclusion naming
//     no known category ("health", "User.Health") is rejected, never
//     ignored: ignoring it would let the data it meant to keep out through.
//     The patterns are kept as sent. On DENY, WITHDRAW and ERASE the
//     exclusions mean nothing and are not checked.
//
// Validate does not look at the clock; see [Change.BoundCapturedAt].
func (c Change) Validate() error {
	var errs []error
	switch {
	case c.ChangeID == "":
		errs = append(errs, fieldErr("change_id", "is empty"))
	case len(c.ChangeID) > MaxIDBytes:
		errs = append(errs, fieldErr("change_id", "is longer than "+strconv.Itoa(MaxIDBytes)+" bytes"))
	case c.Action == ActionGrant && len(c.ChangeID) > MaxGrantIDBytes:
		// A restrictive change's over-long id is applied under its
		// bounded id, which keeps only its first bytes: a longer GRANT id
		// sharing them could win the same-millisecond tie the restrictive
		// change wins by its whole id (see MaxGrantIDBytes).
		errs = append(errs, fieldErr("change_id", "is longer than "+strconv.Itoa(MaxGrantIDBytes)+" bytes, the bound of a GRANT's id"))
	case c.Action == ActionGrant && !utf8.ValidString(c.ChangeID):
		// The store keeps the id in JSON, which has no such bytes: it
		// would compare another id than this one with the next change's.
		errs = append(errs, fieldErr("change_id", "is not valid UTF-8; a GRANT needs an id that is"))
	case c.Action == ActionGrant && strings.Contains(c.ChangeID, maxRune):
		// The mark of the bounded id of a restrictive change whose id
		// is not UTF-8 (BoundChangeID): a GRANT id holding it could win
		// the tie that change should win.
		errs = append(errs, fieldErr("change_id", "holds U+10FFFF, which a GRANT id may not"))
	}
	switch {
	case c.SubjectID == "":
		errs = append(errs, fieldErr("subject_id", "is empty"))
	case len(c.SubjectID) > MaxIDBytes:
		errs = append(errs, fieldErr("subject_id", "is longer than "+strconv.Itoa(MaxIDBytes)+" bytes"))
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
	if c.Action == ActionGrant {
		if err := checkExclusions(c.ExcludedCategories); err != nil {
			errs = append(errs, err)
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

// checkExclusions checks the excluded categories of a grant against the
// taxonomy. The problem names the first bad item by its index, never by its
// value (the value is untrusted input and ends up in dead-letter headers).
func checkExclusions(cats []string) error {
	bad, first := 0, ""
	for i, cat := range cats {
		if err := policy.CheckExclusion(cat); err != nil {
			if bad == 0 {
				first = "item " + strconv.Itoa(i) + " " + err.Error()
			}
			bad++
		}
	}
	switch bad {
	case 0:
		return nil
	case 1:
		return fieldErr("excluded_categories", first)
	default:
		return fieldErr("excluded_categories", first+" (and "+strconv.Itoa(bad-1)+" more item(s) with problems)")
	}
}

// MaxCapturedAt is the latest captured_at the pipeline keeps:
// 9999-12-31T23:59:59.999Z. The consent store compares times in Redis's
// Lua, as doubles, which are exact to the millisecond only up to 2^53 ms
// (year 287,396); past that a DENY captured a millisecond after a GRANT
// could lose to it. [Change.BoundCapturedAt] keeps every date at or
// before this one and [Store.Apply] refuses a later one.
var MaxCapturedAt = time.UnixMilli(maxCapturedMS).UTC()

const maxCapturedMS = 253402300799999

// DefaultMaxClockSkew is the default of the clock rule's bound (see
// [Change.BoundCapturedAt]): how far a change's captured_at may lie after
// the moment it reached the pipeline.
const DefaultMaxClockSkew = 15 * time.Minute

// Restrictive reports whether a takes consent away (DENY, WITHDRAW, ERASE).
func (a Action) Restrictive() bool {
	return a == ActionDeny || a == ActionWithdraw || a == ActionErase
}

// BoundCapturedAt applies the clock rule: the one rule, shared by the HTTP
// intake and consent-sync's consumer (live and rebuild), for a captured_at
// that lies after received, the time the change reached the pipeline (the
// intake's clock when it received the request; at the consumer the Kafka
// record's timestamp, which the intake sets to that same receive time).
// With bound = received + skew:
//
//   - a GRANT dated after bound is rejected (a *[FieldError] on
//     captured_at, matching [ErrInvalidChange]): 400 at the intake, dead
//     letter at the consumer. A GRANT dated in (received, bound] is moved
//     back to received: a grant never counts as made after it reached the
//     pipeline;
//   - a DENY, WITHDRAW or ERASE is never rejected for its date: one dated
//     after bound is moved back to bound. One dated up to bound keeps its
//     date;
//   - anything dated up to received is returned unchanged.
//
// Why: newest captured_at wins for ever, so an unbounded future date would
// override every real change made until then; now every accepted date lies
// at most skew after the change reached the pipeline, and any later real
// change wins once that time has passed. A change that takes consent away
// is never lost to a wrong clock: it is applied with the latest date the
// rule allows. And because grants are capped at their receive time while
// restrictive changes may stand up to skew after theirs, a restrictive
// change wins over every grant that reached the pipeline before it,
// whatever that grant's clock said (if the restrictive change's own clock
// is not slow; a slow clock is indistinguishable from a late delivery).
//
// The rule is idempotent and monotone in received: applying it again with
// the same or a later receive time changes nothing. So a change the intake
// has produced (bounded with its receive time, which becomes the record's
// timestamp) passes the consumer unchanged, including with a broker that
// stamps LogAppendTime, and a rebuild, which sees the same record
// timestamps, decides exactly as the live consumer did.
//
// Whatever the receive time (a zero one too: a record without timestamp),
// no captured_at stays after [MaxCapturedAt]: a GRANT dated after it is
// rejected, a DENY, WITHDRAW or ERASE moved back to it.
//
// A zero received time applies no other rule. Times are compared in milliseconds;
// a moved captured_at is in UTC. The returned change is c with at most its
// CapturedAt changed; compare it with c's to know whether it moved.
func (c Change) BoundCapturedAt(received time.Time, skew time.Duration) (Change, error) {
	captured := c.CapturedAt.UnixMilli()
	if captured > maxCapturedMS {
		if !c.Action.Restrictive() {
			return c, fieldErr("captured_at", "lies after "+MaxCapturedAt.Format(time.RFC3339Nano)+": a GRANT dated that far ahead is refused; check the clock of whatever captured it")
		}
		c.CapturedAt, captured = MaxCapturedAt, maxCapturedMS
	}
	if received.IsZero() {
		return c, nil
	}
	recv := received.UnixMilli()
	if captured <= recv {
		return c, nil
	}
	bound := recv + skew.Milliseconds()
	switch {
	case c.Action.Restrictive():
		if captured > bound {
			c.CapturedAt = time.UnixMilli(bound).UTC()
		}
	case captured > bound:
		return c, fieldErr("captured_at", fmt.Sprintf("lies more than %s after the change reached the pipeline: a GRANT dated that far ahead is refused; check the clock of whatever captured it", skew))
	default:
		c.CapturedAt = time.UnixMilli(recv).UTC()
	}
	return c, nil
}

// BoundChangeID returns id when it is at most [MaxIDBytes] long, else the
// bounded id derived from it: the first [boundKeep] bytes of id (cut at a
// rune boundary), "~sha256:" and the hex SHA-256 of the whole id (at most
// 256 bytes), the same on every delivery and for every consumer. Keeping
// the prefix keeps the tie order of changes captured in the same
// millisecond (the greater id wins): the bounded id orders against any
// other id as id does, unless that id shares its first [boundKeep] bytes
// (then the bounded id, with its "~", is most often the greater: the
// restrictive change wins). A bare hash would order at random against the
// other changes' ids, letting a grant survive the withdrawal that should
// win the tie.
//
// An id that is not valid UTF-8 is bounded too, whatever its length: the
// store keeps ids in JSON, which would write those bytes as U+FFFD, so
// that the stored id would compare with the next change's as another
// string (the state then depended on the order changes were applied). Its
// bounded id is the valid UTF-8 before its first invalid byte (at most
// [boundKeep] - 4 bytes, cut at a rune boundary), U+10FFFF, "~sha256:"
// and the hex SHA-256 of the whole id. An invalid byte is 0x80 or more,
// above "~": cut there and marked with "~", the id would lose the tie to
// a GRANT with the same valid prefix and then any non-ASCII character
// ("aé" against "a\xff"). U+10FFFF is the greatest character, and
// Validate refuses a GRANT id holding it, so the bounded id orders
// against every GRANT id as the id does or wins.
func BoundChangeID(id string) string {
	if len(id) <= MaxIDBytes && utf8.ValidString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	if !utf8.ValidString(id) {
		k := 0
		for k < len(id) {
			r, n := utf8.DecodeRuneInString(id[k:])
			if (r == utf8.RuneError && n == 1) || k+n > boundKeep-len(maxRune) {
				break
			}
			k += n
		}
		return id[:k] + maxRune + "~sha256:" + hex.EncodeToString(sum[:])
	}
	k := boundKeep
	for k > 0 && !utf8.RuneStart(id[k]) {
		k--
	}
	return id[:k] + "~sha256:" + hex.EncodeToString(sum[:])
}

// MaxGrantIDBytes bounds a GRANT's change_id (180 bytes; other actions:
// [MaxIDBytes]). A DENY, WITHDRAW or ERASE with a longer id than
// [MaxIDBytes], or one that is not UTF-8, is applied under its bounded id
// ([BoundChangeID]), which keeps at least its first MaxGrantIDBytes+1
// bytes (or its valid prefix and U+10FFFF, the greatest character): so
// against every GRANT id the bounded id orders as the whole id does, or
// is the greater (the restrictive change wins), and no GRANT wins a
// same-millisecond tie its restrictive change should win. With GRANT ids
// up to [MaxIDBytes], one sharing the first bytes of a bounded id and then
// a character above "~" won it.
const MaxGrantIDBytes = boundKeep - 4

// maxRune is U+10FFFF, the greatest character: the mark of a bounded id
// derived from an id that is not valid UTF-8, which no GRANT id may hold.
const maxRune = "\U0010FFFF"

// boundKeep is how many bytes of an over-long change id its bounded id
// keeps: the rest of [MaxIDBytes] after "~sha256:" and 64 hex digits.
const boundKeep = MaxIDBytes - len("~sha256:") - 2*sha256.Size

// BoundRestrictiveID returns c with its change_id bounded
// ([BoundChangeID]: over-long or not valid UTF-8) when c takes consent
// away (WITHDRAW, DENY, ERASE):
// such a change must never be refused for its id, or the grant it
// withdraws would stay in force. A GRANT keeps its id, and Validate
// refuses it when that is over the bound (fail closed: no grant). The
// consumer applies this before Validate; the intake does not (it answers
// 400, so that the sender can send the change again with a shorter id).
func (c Change) BoundRestrictiveID() Change {
	switch c.Action {
	case ActionWithdraw, ActionDeny, ActionErase:
		c.ChangeID = BoundChangeID(c.ChangeID)
	}
	return c
}
