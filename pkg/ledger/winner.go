package ledger

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

// Coords are where a row was read from: topic, partition, offset.
type Coords struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Why a consent change lost (ChangeOutcome.Lost).
const (
	// LostSuperseded: a change for the purpose captured later won.
	LostSuperseded = "superseded"
	// LostTie: a change for the purpose captured in the same millisecond
	// with a greater change id won.
	LostTie = "tie"
	// LostErased: an ERASE newer than the change is what decides the
	// purpose (no later change for it).
	LostErased = "erased"
	// LostDuplicate: a redelivery of the winning change (same change id,
	// same captured_at) at another offset.
	LostDuplicate = "duplicate"
	// LostInvalid: the action is not GRANT, DENY, WITHDRAW or ERASE; the
	// pipeline never applies such a change.
	LostInvalid = "invalid_action"
	// LostRefused: consent-sync's consumer refuses the change (it fails
	// consent.Change.Validate, or it is a GRANT dated further after its
	// record's timestamp than the clock rule allows) and dead-letters it:
	// it was never applied.
	LostRefused = "refused"
)

// Purpose statuses (PurposeOutcome.Status): the consent.Status values, and
// expired, erased and change_id_too_long as consent.State.Check reports
// them.
const (
	StatusGranted         = string(consent.StatusGranted)
	StatusDenied          = string(consent.StatusDenied)
	StatusWithdrawn       = string(consent.StatusWithdrawn)
	StatusExpired         = string(consent.ReasonExpired)
	StatusErased          = string(consent.ReasonErased)
	StatusChangeIDTooLong = string(consent.ReasonChangeIDTooLong)
)

// ChangeOutcome is one consent change of a subject and what became of it.
type ChangeOutcome struct {
	Source             Coords     `json:"source"`
	ChangeID           string     `json:"change_id"`
	Purpose            string     `json:"purpose,omitempty"`
	Action             string     `json:"action"`
	LegalBasis         string     `json:"legal_basis,omitempty"`
	ExcludedCategories []string   `json:"excluded_categories"`
	ChangeSource       string     `json:"change_source,omitempty"`
	NoticeVersion      string     `json:"notice_version,omitempty"`
	CapturedAt         time.Time  `json:"captured_at"`
	ExpiresAt          *time.Time `json:"expires_at,omitempty"`
	// Won: the change decides its purpose now (for an ERASE: it is the
	// subject's newest erasure, which decides every purpose without a
	// later change; ErasedPurposes lists the known ones).
	Won            bool     `json:"won"`
	ErasedPurposes []string `json:"erased_purposes,omitempty"`
	// Lost is why it does not (a Lost* code), LostTo the change that
	// does, Why the sentence.
	Lost   string `json:"lost,omitempty"`
	LostTo string `json:"lost_to,omitempty"`
	Why    string `json:"why,omitempty"`
	// Expired: a GRANT whose expires_at has passed.
	Expired bool `json:"expired,omitempty"`
	// RecordTime is the Kafka timestamp of the change's record: the time
	// the clock rule (consent.Change.BoundCapturedAt) measures captured_at
	// against; zero applies no rule.
	RecordTime time.Time `json:"record_time"`
	// AppliedCapturedAt is set when the pipeline applies the change with
	// another captured_at than it carries (the clock rule moved it), and
	// AppliedChangeID when it applies it under another id (a restrictive
	// change's over-long id, bounded): what audit records name, and what
	// the winner rule compares.
	AppliedCapturedAt *time.Time `json:"applied_captured_at,omitempty"`
	AppliedChangeID   string     `json:"applied_change_id,omitempty"`

	// subject is the subject id, for Validate (empty in tests that build
	// changes by hand: a placeholder is validated then).
	subject string
	// at and id are what the pipeline applies: captured_at in
	// milliseconds and change id; refused is why the consumer refuses the
	// change ("" when it applies it).
	at      int64
	id      string
	refused string
}

// PurposeOutcome is the current consent of a subject for one purpose.
type PurposeOutcome struct {
	Purpose string `json:"purpose"`
	// Status is granted, denied, withdrawn, expired, erased or
	// change_id_too_long.
	Status string `json:"status"`
	// ChangeID is the change that decides (the ERASE when erased; empty
	// for change_id_too_long, which names no change, as the pipeline).
	ChangeID           string     `json:"change_id,omitempty"`
	CapturedAt         time.Time  `json:"captured_at"`
	ExpiresAt          *time.Time `json:"expires_at,omitempty"`
	LegalBasis         string     `json:"legal_basis,omitempty"`
	ExcludedCategories []string   `json:"excluded_categories"`
}

// newer is consent's order of changes: a later captured_at in
// milliseconds, or the same millisecond and a greater change id (bytewise),
// both as the pipeline applies them (see normalize).
func newer(a, b *ChangeOutcome) bool {
	if a.at != b.at {
		return a.at > b.at
	}
	return a.id > b.id
}

// MaxClockSkew is the bound of the clock rule the winner rule assumes
// consent-sync applies (its CONSENT_MAX_CLOCK_SKEW, 15 minutes by default).
var MaxClockSkew = consent.DefaultMaxClockSkew

// normalize does to c what consent-sync's consumer does to a record of
// consent.changes before it applies it (apply.Syncer.Process): bound a
// restrictive change's id, validate, apply the clock rule against the
// record's timestamp. It sets the applied time and id, or why the change is
// refused.
func normalize(c *ChangeOutcome) {
	// The rule runs on the strings consent-sync saw, not on the ledger's
	// quoted form of odd ones (storeText): ids order byte by byte.
	// A change id stored bounded (longer than consent.MaxIDBytes, see
	// storeText) is checked as one over the bound: a GRANT refused, a
	// restrictive change applied under its bounded id, as consent-sync
	// does.
	raw := loadText(c.ChangeID)
	id := raw
	if b, long := boundedText(c.ChangeID); long {
		id = b
		if consent.Action(loadText(c.Action)) == consent.ActionGrant {
			id = b + strings.Repeat("~", consent.MaxIDBytes+1-len(b)) // over the bound: Validate refuses it
		}
	}
	excl := make([]string, len(c.ExcludedCategories))
	for i, e := range c.ExcludedCategories {
		excl[i] = loadText(e)
	}
	cc := consent.Change{ChangeID: id, SubjectID: c.subject, Purpose: ruleText(c.Purpose), Action: consent.Action(loadText(c.Action)),
		LegalBasis: consent.LegalBasis(loadText(c.LegalBasis)), ExcludedCategories: excl, Source: loadText(c.ChangeSource),
		NoticeVersion: loadText(c.NoticeVersion), CapturedAt: c.CapturedAt}
	if cc.SubjectID == "" {
		cc.SubjectID = "-"
	}
	if c.ExpiresAt != nil {
		cc.ExpiresAt = *c.ExpiresAt
	}
	c.at, c.id, c.refused, c.AppliedCapturedAt, c.AppliedChangeID = c.CapturedAt.UnixMilli(), raw, "", nil, ""
	cc = cc.BoundRestrictiveID()
	err := cc.Validate()
	if err == nil {
		cc, err = cc.BoundCapturedAt(c.RecordTime, MaxClockSkew)
	}
	if err != nil {
		c.refused = err.Error()
		return
	}
	if cc.ChangeID != raw {
		c.id, c.AppliedChangeID = cc.ChangeID, storeText(cc.ChangeID)
	}
	if at := cc.CapturedAt.UnixMilli(); at != c.at {
		c.at = at
		t := time.UnixMilli(at).UTC()
		c.AppliedCapturedAt = &t
	}
}

func validPurposeAction(a string) bool {
	switch consent.Action(a) {
	case consent.ActionGrant, consent.ActionDeny, consent.ActionWithdraw:
		return true
	}
	return false
}

// Resolve applies the pipeline's winner rule (consent.Store.Apply and
// consent.State.Check) to every change of one subject, at time now, to the
// changes as consent-sync's consumer applies them: a change it refuses
// (consent.Change.Validate, or a GRANT dated beyond the clock rule's
// MaxClockSkew after its RecordTime) is lost as refused; a GRANT dated
// after its RecordTime counts as made then, a restrictive change dated
// beyond the skew as made at RecordTime + skew, and a restrictive change's
// over-long id is bounded (AppliedCapturedAt, AppliedChangeID). It sorts
// changes in time order (applied captured_at, then change id, then source
// coordinates) and marks each as won or lost; it returns the purposes'
// outcomes ordered by purpose. The rule: per purpose, the newest change
// wins (newer captured_at in milliseconds; in a tie the greater change id);
// an ERASE applies to every purpose whose winning change is not newer than
// it, which is then erased until a later change; a winning GRANT whose
// expires_at is at or before now is expired.
func Resolve(changes []ChangeOutcome, now time.Time) ([]ChangeOutcome, []PurposeOutcome) {
	cs := slices.Clone(changes)
	for i := range cs {
		normalize(&cs[i])
	}
	slices.SortStableFunc(cs, func(a, b ChangeOutcome) int {
		if c := a.at - b.at; c != 0 {
			return cmp.Compare(c, 0)
		}
		return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.ChangeID, b.ChangeID), cmp.Compare(a.Source.Topic, b.Source.Topic),
			cmp.Compare(a.Source.Partition, b.Source.Partition), cmp.Compare(a.Source.Offset, b.Source.Offset))
	})
	// The newest erasure, and the newest change per purpose (the first
	// in time order of equal ones).
	var erase *ChangeOutcome
	best := map[string]*ChangeOutcome{}
	for i := range cs {
		c := &cs[i]
		c.Won, c.Lost, c.LostTo, c.Why, c.ErasedPurposes = false, "", "", "", nil
		c.Expired = c.Action == string(consent.ActionGrant) && c.ExpiresAt != nil && !now.Before(*c.ExpiresAt)
		switch {
		case c.refused != "":
		case c.Action == string(consent.ActionErase):
			if erase == nil || newer(c, erase) {
				erase = c
			}
		case validPurposeAction(c.Action):
			if b := best[c.Purpose]; b == nil || newer(c, b) {
				best[c.Purpose] = c
			}
		}
	}
	// The winner of each purpose: its newest change, unless the erasure
	// is newer.
	winner := map[string]*ChangeOutcome{}
	var purposes []PurposeOutcome
	for p, b := range best {
		w := b
		if erase != nil && !newer(b, erase) {
			w = erase
		}
		winner[p] = w
		po := PurposeOutcome{Purpose: p, ChangeID: storeText(w.id), CapturedAt: time.UnixMilli(w.at).UTC(), ExcludedCategories: []string{}}
		switch {
		case len(w.id) > consent.MaxIDBytes:
			po.Status, po.ChangeID, po.CapturedAt = StatusChangeIDTooLong, "", time.Time{}
		case w == erase:
			po.Status = StatusErased
		default:
			po.LegalBasis, po.ExcludedCategories = w.LegalBasis, nonNil(w.ExcludedCategories)
			switch consent.Action(w.Action) {
			case consent.ActionGrant:
				po.Status, po.ExpiresAt = StatusGranted, w.ExpiresAt
				if w.Expired {
					po.Status = StatusExpired
				}
			case consent.ActionWithdraw:
				po.Status = StatusWithdrawn
			default:
				po.Status = StatusDenied
			}
		}
		purposes = append(purposes, po)
	}
	slices.SortFunc(purposes, func(a, b PurposeOutcome) int { return cmp.Compare(a.Purpose, b.Purpose) })

	for i := range cs {
		c := &cs[i]
		switch {
		case !validPurposeAction(c.Action) && c.Action != string(consent.ActionErase):
			c.Lost, c.Why = LostInvalid, fmt.Sprintf("action %q is not GRANT, DENY, WITHDRAW or ERASE: never applied", c.Action)
		case c.refused != "":
			c.Lost, c.Why = LostRefused, "refused by consent-sync (dead-lettered as invalid_change), never applied: "+c.refused
		case c.Action == string(consent.ActionErase):
			if c == erase {
				c.Won = true
				for _, po := range purposes {
					if winner[po.Purpose] == erase {
						c.ErasedPurposes = append(c.ErasedPurposes, po.Purpose)
					}
				}
			} else {
				lose(c, erase)
			}
		default:
			w := winner[c.Purpose]
			if w == c {
				c.Won = true
				continue
			}
			lose(c, w)
		}
	}
	return cs, purposes
}

// lose marks c as lost to w, which decides in its place.
func lose(c, w *ChangeOutcome) {
	c.LostTo = w.ChangeID
	switch {
	case w.id == c.id && !newer(w, c) && !newer(c, w):
		c.Lost, c.Why = LostDuplicate, fmt.Sprintf("a redelivery of %s", w.ChangeID)
	case w.Action == string(consent.ActionErase) && c.Action != string(consent.ActionErase):
		c.Lost, c.Why = LostErased, fmt.Sprintf("erased by %s", w.ChangeID)
	case w.at == c.at:
		c.Lost, c.Why = LostTie, fmt.Sprintf("lost a tie to %s", w.ChangeID)
	default:
		c.Lost, c.Why = LostSuperseded, fmt.Sprintf("superseded by %s captured later", w.ChangeID)
	}
}
