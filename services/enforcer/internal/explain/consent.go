package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

// ConsentJSON is the consent state of one subject as explain reads it: the
// JSON form of consent.State (what the enforcer reads from Redis).
//
//	{
//	  "subject_id": "c-1001",
//	  "purposes": {
//	    "marketing": {
//	      "status": "granted",                      // granted | denied | withdrawn
//	      "change_id": "c1",
//	      "captured_at": "2026-01-10T09:00:00Z",    // RFC 3339
//	      "expires_at": "2027-01-10T09:00:00Z",     // optional; null or absent: no expiry
//	      "legal_basis": "CONSENT",                 // CONSENT (default) | LEGITIMATE_INTEREST | CONTRACT
//	      "excluded_categories": ["user.health"]    // optional
//	    }
//	  },
//	  "erased_at": null,                            // optional: time of the newest erasure
//	  "erased_by": null                             // optional: its change id
//	}
//
// A purpose that is absent was never asked. An empty object (or no consent
// input at all) is a subject about whom nothing is stored.
type ConsentJSON struct {
	SubjectID string                        `json:"subject_id"`
	Purposes  map[string]PurposeConsentJSON `json:"purposes"`
	ErasedAt  *string                       `json:"erased_at"`
	ErasedBy  *string                       `json:"erased_by"`
}

// PurposeConsentJSON is one purpose of ConsentJSON.
type PurposeConsentJSON struct {
	Status             string   `json:"status"`
	ChangeID           string   `json:"change_id"`
	CapturedAt         string   `json:"captured_at"`
	ExpiresAt          *string  `json:"expires_at"`
	LegalBasis         string   `json:"legal_basis"`
	ExcludedCategories []string `json:"excluded_categories"`
	Source             string   `json:"source"`
	NoticeVersion      string   `json:"notice_version"`
}

// ParseConsent reads a ConsentJSON document into the consent.State the
// enforcer would have looked up, with times in UTC to the millisecond as the
// store keeps them. Empty input, "null" and "{}" give a nil State (unknown
// subject). Unknown keys, bad statuses, legal bases and times are errors that
// name the key, never the value.
func ParseConsent(data []byte) (*consent.State, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var doc ConsentJSON
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("read consent json: %w", err)
	}
	if dec.More() {
		return nil, errors.New("read consent json: more than one json value")
	}
	if doc.SubjectID == "" && len(doc.Purposes) == 0 && doc.ErasedAt == nil && doc.ErasedBy == nil {
		return nil, nil
	}
	st := &consent.State{SubjectID: doc.SubjectID, Purposes: map[string]consent.PurposeState{}}
	var errs []error
	if doc.ErasedAt != nil {
		t, err := parseTime(*doc.ErasedAt)
		if err != nil {
			errs = append(errs, fmt.Errorf("erased_at: %w", err))
		}
		st.ErasedAt = t
	}
	if doc.ErasedBy != nil {
		st.ErasedBy = *doc.ErasedBy
	}
	ids := make([]string, 0, len(doc.Purposes))
	for id := range doc.Purposes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := doc.Purposes[id]
		ps, err := purposeState(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("purposes.%s.%w", id, err))
			continue
		}
		st.Purposes[id] = ps
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("consent json:\n%w", err)
	}
	return st, nil
}

func purposeState(p PurposeConsentJSON) (consent.PurposeState, error) {
	ps := consent.PurposeState{
		Status:        consent.Status(p.Status),
		ChangeID:      p.ChangeID,
		LegalBasis:    consent.LegalBasis(p.LegalBasis),
		Source:        p.Source,
		NoticeVersion: p.NoticeVersion,
	}
	switch ps.Status {
	case consent.StatusGranted, consent.StatusDenied, consent.StatusWithdrawn:
	default:
		return ps, errors.New("status: want granted, denied or withdrawn")
	}
	if p.ChangeID == "" {
		return ps, errors.New("change_id: missing")
	}
	if ps.LegalBasis == "" {
		ps.LegalBasis = consent.BasisConsent
	}
	if !ps.LegalBasis.Valid() {
		return ps, errors.New("legal_basis: want CONSENT, LEGITIMATE_INTEREST or CONTRACT")
	}
	t, err := parseTime(p.CapturedAt)
	if err != nil {
		return ps, fmt.Errorf("captured_at: %w", err)
	}
	ps.CapturedAt = t
	if p.ExpiresAt != nil {
		if ps.ExpiresAt, err = parseTime(*p.ExpiresAt); err != nil {
			return ps, fmt.Errorf("expires_at: %w", err)
		}
	}
	if len(p.ExcludedCategories) > 0 {
		ps.ExcludedCategories = slices.Clone(p.ExcludedCategories)
	}
	return ps, nil
}

// parseTime reads an RFC 3339 time, in UTC truncated to the millisecond.
func parseTime(s string) (time.Time, error) {
	if strings.TrimSpace(s) == "" {
		return time.Time{}, errors.New("missing: want an RFC 3339 time such as 2026-11-22T08:00:00Z")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time such as 2026-11-22T08:00:00Z")
	}
	return time.UnixMilli(t.UnixMilli()).UTC(), nil
}
