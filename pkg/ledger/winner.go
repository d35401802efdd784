package ledger

import (
	"cmp"
	"fmt"
	"slices"
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
// milliseconds, or the same millisecond and a greater change id (bytewise).
func newer(a, b *ChangeOutcome) bool {
	ta, tb := a.CapturedAt.UnixMilli(), b.CapturedAt.UnixMilli()
	if ta != tb {
		return ta > tb
	}
	return a.ChangeID > b.ChangeID
}

func validPurposeAction(a string) bool {
	switch consent.Action(a) {
	case consent.ActionGrant, consent.ActionDeny, consent.ActionWithdraw:
		return true
	}
	return false
}

// Resolve applies the pipeline's winner rule (consent.Store.Apply and
// consent.State.Check) to every change of one subject, at time now. It
// sorts changes in time order (captured_at, then change id, then source
// coordinates) and marks each as won or lost; it returns the purposes'
// outcomes ordered by purpose. The rule: per purpose, the newest change
// wins (newer captured_at in milliseconds; in a tie the greater change id);
// an ERASE applies to every purpose whose winning change is not newer than
// it, which is then erased until a later change; a winning GRANT whose
// expires_at is at or before now is expired.
func Resolve(changes []ChangeOutcome, now time.Time) ([]ChangeOutcome, []PurposeOutcome) {
	cs := slices.Clone(changes)
	slices.SortStableFunc(cs, func(a, b ChangeOutcome) int {
		if c := a.CapturedAt.UnixMilli() - b.CapturedAt.UnixMilli(); c != 0 {
			return cmp.Compare(c, 0)
		}
		return cmp.Or(cmp.Compare(a.ChangeID, b.ChangeID), cmp.Compare(a.Source.Topic, b.Source.Topic),
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
		po := PurposeOutcome{Purpose: p, ChangeID: w.ChangeID, CapturedAt: w.CapturedAt, ExcludedCategories: []string{}}
		switch {
		case len(w.ChangeID) > consent.MaxIDBytes:
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
		case !validPurposeAction(c.Action):
			c.Lost, c.Why = LostInvalid, fmt.Sprintf("action %q is not GRANT, DENY, WITHDRAW or ERASE: never applied", c.Action)
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
	case w.ChangeID == c.ChangeID && !newer(w, c) && !newer(c, w):
		c.Lost, c.Why = LostDuplicate, fmt.Sprintf("a redelivery of %s", w.ChangeID)
	case w.Action == string(consent.ActionErase) && c.Action != string(consent.ActionErase):
		c.Lost, c.Why = LostErased, fmt.Sprintf("erased by %s", w.ChangeID)
	case w.CapturedAt.UnixMilli() == c.CapturedAt.UnixMilli():
		c.Lost, c.Why = LostTie, fmt.Sprintf("lost a tie to %s", w.ChangeID)
	default:
		c.Lost, c.Why = LostSuperseded, fmt.Sprintf("superseded by %s captured later", w.ChangeID)
	}
}
