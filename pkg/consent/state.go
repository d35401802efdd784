package consent

import "time"

// Status is the stored outcome of the last change for one purpose.
type Status string

// The statuses of a purpose. "Never asked" has no status: it is the absence
// of a [PurposeState].
const (
	StatusGranted   Status = "granted"
	StatusDenied    Status = "denied"
	StatusWithdrawn Status = "withdrawn"
)

// statusOf maps a purpose action to the status it leaves; ERASE has none.
func statusOf(a Action) (Status, bool) {
	switch a {
	case ActionGrant:
		return StatusGranted, true
	case ActionDeny:
		return StatusDenied, true
	case ActionWithdraw:
		return StatusWithdrawn, true
	}
	return "", false
}

// PurposeState is the current consent of one subject for one purpose: what
// the winning (newest) change said, and which change that was, so that every
// decision can name the change that made it.
type PurposeState struct {
	Status             Status
	ChangeID           string
	CapturedAt         time.Time
	ExpiresAt          time.Time // zero: no expiry
	LegalBasis         LegalBasis
	ExcludedCategories []string
	Source             string
	NoticeVersion      string
}

// PurposeStateOf returns the state a GRANT, DENY or WITHDRAW change leaves
// for its purpose, with times in UTC truncated to the millisecond and an
// empty ExcludedCategories as nil (the form [Store.Lookup] returns). ok is
// false for ERASE and unknown actions.
func PurposeStateOf(c Change) (ps PurposeState, ok bool) {
	st, ok := statusOf(c.Action)
	if !ok {
		return PurposeState{}, false
	}
	ps = PurposeState{
		Status:        st,
		ChangeID:      c.ChangeID,
		CapturedAt:    msTime(c.CapturedAt.UnixMilli()),
		LegalBasis:    c.LegalBasis,
		Source:        c.Source,
		NoticeVersion: c.NoticeVersion,
	}
	if !c.ExpiresAt.IsZero() {
		ps.ExpiresAt = msTime(c.ExpiresAt.UnixMilli())
	}
	if len(c.ExcludedCategories) > 0 {
		ps.ExcludedCategories = append([]string(nil), c.ExcludedCategories...)
	}
	return ps, true
}

// msTime is the UTC time of Unix milliseconds ms.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// State is the current consent of one subject: one entry per purpose it was
// ever asked about, plus the erasure tombstone.
type State struct {
	SubjectID string
	// Purposes maps purpose ids to their state. A purpose that is absent
	// was never asked (or was erased).
	Purposes map[string]PurposeState
	// ErasedAt is the captured_at of the newest erasure; zero if the subject
	// was never erased. Changes captured before it are ignored.
	ErasedAt time.Time
	// ErasedBy is the change id of that erasure.
	ErasedBy string
}

// Reason says why a [Verdict] allows or denies. The values are stable: they go
// into audit records.
type Reason string

// The reasons of a verdict. Only ReasonGranted allows.
const (
	// ReasonGranted: a valid, unexpired grant for the purpose.
	ReasonGranted Reason = "granted"
	// ReasonNeverAsked: the subject is known but has no change for the
	// purpose. Opt-out purposes may treat this differently from denied.
	ReasonNeverAsked Reason = "never_asked"
	// ReasonUnknownSubject: nothing is stored for the subject.
	ReasonUnknownSubject Reason = "unknown_subject"
	// ReasonDenied: the newest change for the purpose is a DENY.
	ReasonDenied Reason = "denied"
	// ReasonWithdrawn: the newest change for the purpose is a WITHDRAW.
	ReasonWithdrawn Reason = "withdrawn"
	// ReasonExpired: the newest change is a GRANT whose ExpiresAt has passed.
	ReasonExpired Reason = "expired"
	// ReasonErased: the subject was erased and has no later change for the
	// purpose.
	ReasonErased Reason = "erased"
	// ReasonChangeIDTooLong: the stored change that would decide (a purpose
	// state or the erasure) has a change id longer than MaxIDBytes, stored
	// before change ids were bounded. It allows nothing and the verdict
	// names no change (see Check).
	ReasonChangeIDTooLong Reason = "change_id_too_long"
)

// Verdict is the answer of [State.Check] for one purpose: whether the purpose
// is allowed, why, and the consent change that decided it (empty ChangeID for
// never_asked and unknown_subject).
type Verdict struct {
	Allowed    bool
	Reason     Reason
	ChangeID   string
	CapturedAt time.Time
	// LegalBasis and ExcludedCategories come from the deciding change (the
	// grant, or the denial/withdrawal); ExcludedCategories matter only when
	// Allowed, where they name the data categories to redact.
	LegalBasis         LegalBasis
	ExcludedCategories []string
}

// Check decides whether purpose is allowed for the subject at time now. It
// denies by default:
//
//   - a nil State, or one with no purposes and no erasure: unknown_subject;
//   - an entry that is granted with ExpiresAt zero or after now: granted
//     (allowed; the verdict carries the excluded categories);
//   - granted with ExpiresAt at or before now: expired;
//   - denied: denied; withdrawn: withdrawn;
//   - no entry (or, defensively, an entry not newer than the erasure) on an
//     erased subject: erased, naming the erasure change;
//   - no entry otherwise: never_asked;
//   - whatever the status, when the deciding change (the entry, or the
//     erasure) has a change id longer than [MaxIDBytes] (stored before
//     change ids were bounded): change_id_too_long, denied, naming no
//     change (no ChangeID or CapturedAt), so that no audit record carries
//     an over-long id.
//
// Check is pure and safe to call on a shared State concurrently. The returned
// ExcludedCategories shares the State's slice: do not modify it.
func (s *State) Check(purpose string, now time.Time) Verdict {
	if s == nil || (len(s.Purposes) == 0 && s.ErasedAt.IsZero() && s.ErasedBy == "") {
		return Verdict{Reason: ReasonUnknownSubject}
	}
	ps, ok := s.Purposes[purpose]
	erased := !s.ErasedAt.IsZero() || s.ErasedBy != ""
	if ok && erased && !newer(ps.CapturedAt.UnixMilli(), ps.ChangeID, s.ErasedAt.UnixMilli(), s.ErasedBy) {
		ok = false
	}
	if !ok {
		if erased {
			if len(s.ErasedBy) > MaxIDBytes {
				return Verdict{Reason: ReasonChangeIDTooLong}
			}
			return Verdict{Reason: ReasonErased, ChangeID: s.ErasedBy, CapturedAt: s.ErasedAt}
		}
		return Verdict{Reason: ReasonNeverAsked}
	}
	if len(ps.ChangeID) > MaxIDBytes {
		// Stored before change ids were bounded: a change the intake and
		// the consumer now refuse allows nothing, and the verdict does not
		// name it (it would go into every audit record of the subject).
		return Verdict{Reason: ReasonChangeIDTooLong}
	}
	v := Verdict{
		ChangeID:           ps.ChangeID,
		CapturedAt:         ps.CapturedAt,
		LegalBasis:         ps.LegalBasis,
		ExcludedCategories: ps.ExcludedCategories,
	}
	switch ps.Status {
	case StatusGranted:
		if !ps.ExpiresAt.IsZero() && !now.Before(ps.ExpiresAt) {
			v.Reason = ReasonExpired
		} else {
			v.Allowed, v.Reason = true, ReasonGranted
		}
	case StatusWithdrawn:
		v.Reason = ReasonWithdrawn
	default:
		// StatusDenied, and any unknown status: deny by default.
		v.Reason = ReasonDenied
	}
	return v
}

// newer reports whether change (t1, c1) wins over change (t2, c2): a later
// captured_at in milliseconds, or the same millisecond and a greater change id
// (byte-wise). The Lua script of the store implements the same order.
func newer(t1 int64, c1 string, t2 int64, c2 string) bool {
	if t1 != t2 {
		return t1 > t2
	}
	return c1 > c2
}
