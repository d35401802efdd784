package consent

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	exp := t0.Add(time.Hour)
	grant := PurposeState{
		Status: StatusGranted, ChangeID: "g1", CapturedAt: t0, ExpiresAt: exp,
		LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"},
	}
	noExpiry := grant
	noExpiry.ExpiresAt = time.Time{}
	denied := PurposeState{Status: StatusDenied, ChangeID: "d1", CapturedAt: t0, LegalBasis: BasisLegitimateInterest}
	withdrawn := PurposeState{Status: StatusWithdrawn, ChangeID: "w1", CapturedAt: t0}
	known := func(ps map[string]PurposeState) *State { return &State{SubjectID: "s", Purposes: ps} }
	erasedAt := t0.Add(-time.Minute)
	// Stored before change ids were bounded (MaxIDBytes).
	longID := strings.Repeat("c", 300<<10)
	longGrant := grant
	longGrant.ChangeID = longID
	longDenial := denied
	longDenial.ChangeID = idOfLen(MaxIDBytes + 1)
	atBound := PurposeState{Status: StatusGranted, ChangeID: idOfLen(MaxIDBytes), CapturedAt: t0, LegalBasis: BasisConsent}

	tests := []struct {
		name    string
		state   *State
		purpose string
		now     time.Time
		want    Verdict
	}{
		{"nil state", nil, "ads", t0, Verdict{Reason: ReasonUnknownSubject}},
		{"empty state", &State{SubjectID: "s"}, "ads", t0, Verdict{Reason: ReasonUnknownSubject}},
		{"never asked", known(map[string]PurposeState{"email": grant}), "ads", t0, Verdict{Reason: ReasonNeverAsked}},
		{"granted carries categories", known(map[string]PurposeState{"ads": grant}), "ads", t0,
			Verdict{Allowed: true, Reason: ReasonGranted, ChangeID: "g1", CapturedAt: t0,
				LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"}}},
		{"granted without expiry", known(map[string]PurposeState{"ads": noExpiry}), "ads", t0.AddDate(50, 0, 0),
			Verdict{Allowed: true, Reason: ReasonGranted, ChangeID: "g1", CapturedAt: t0,
				LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"}}},
		{"one millisecond before expiry", known(map[string]PurposeState{"ads": grant}), "ads", exp.Add(-time.Millisecond),
			Verdict{Allowed: true, Reason: ReasonGranted, ChangeID: "g1", CapturedAt: t0,
				LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"}}},
		{"expired exactly at ExpiresAt", known(map[string]PurposeState{"ads": grant}), "ads", exp,
			Verdict{Reason: ReasonExpired, ChangeID: "g1", CapturedAt: t0,
				LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"}}},
		{"expired after", known(map[string]PurposeState{"ads": grant}), "ads", exp.Add(time.Second),
			Verdict{Reason: ReasonExpired, ChangeID: "g1", CapturedAt: t0,
				LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"}}},
		{"denied", known(map[string]PurposeState{"ads": denied}), "ads", t0,
			Verdict{Reason: ReasonDenied, ChangeID: "d1", CapturedAt: t0, LegalBasis: BasisLegitimateInterest}},
		{"withdrawn", known(map[string]PurposeState{"ads": withdrawn}), "ads", t0,
			Verdict{Reason: ReasonWithdrawn, ChangeID: "w1", CapturedAt: t0}},
		{"unknown status denies", known(map[string]PurposeState{"ads": {Status: "maybe", ChangeID: "x", CapturedAt: t0}}), "ads", t0,
			Verdict{Reason: ReasonDenied, ChangeID: "x", CapturedAt: t0}},
		{"erased, nothing after", &State{SubjectID: "s", Purposes: map[string]PurposeState{}, ErasedAt: erasedAt, ErasedBy: "e1"}, "ads", t0,
			Verdict{Reason: ReasonErased, ChangeID: "e1", CapturedAt: erasedAt}},
		{"erased, other purpose granted later", &State{SubjectID: "s", Purposes: map[string]PurposeState{"email": grant}, ErasedAt: erasedAt, ErasedBy: "e1"}, "ads", t0,
			Verdict{Reason: ReasonErased, ChangeID: "e1", CapturedAt: erasedAt}},
		{"erased, then granted later", &State{SubjectID: "s", Purposes: map[string]PurposeState{"ads": grant}, ErasedAt: erasedAt, ErasedBy: "e1"}, "ads", t0,
			Verdict{Allowed: true, Reason: ReasonGranted, ChangeID: "g1", CapturedAt: t0,
				LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"}}},
		{"legacy grant with an over-long change id allows nothing, names no change", known(map[string]PurposeState{"ads": longGrant}), "ads", t0,
			Verdict{Reason: ReasonChangeIDTooLong}},
		{"legacy denial with an over-long change id names no change", known(map[string]PurposeState{"ads": longDenial}), "ads", t0,
			Verdict{Reason: ReasonChangeIDTooLong}},
		{"change id exactly at the bound", known(map[string]PurposeState{"ads": atBound}), "ads", t0,
			Verdict{Allowed: true, Reason: ReasonGranted, ChangeID: atBound.ChangeID, CapturedAt: t0, LegalBasis: BasisConsent}},
		{"legacy erasure with an over-long change id", &State{SubjectID: "s", Purposes: map[string]PurposeState{}, ErasedAt: erasedAt, ErasedBy: longID}, "ads", t0,
			Verdict{Reason: ReasonChangeIDTooLong}},
		{"grant after a legacy erasure", &State{SubjectID: "s", Purposes: map[string]PurposeState{"ads": grant}, ErasedAt: erasedAt, ErasedBy: longID}, "ads", t0,
			Verdict{Allowed: true, Reason: ReasonGranted, ChangeID: "g1", CapturedAt: t0,
				LegalBasis: BasisConsent, ExcludedCategories: []string{"user.health.*"}}},
		{"entry older than erasure is ignored", &State{SubjectID: "s", Purposes: map[string]PurposeState{"ads": grant}, ErasedAt: t0.Add(time.Minute), ErasedBy: "e1"}, "ads", t0,
			Verdict{Reason: ReasonErased, ChangeID: "e1", CapturedAt: t0.Add(time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.state.Check(tt.purpose, tt.now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Check(%q) =\n %+v\nwant\n %+v", tt.purpose, got, tt.want)
			}
		})
	}
}

func TestNewerOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		t1   int64
		c1   string
		t2   int64
		c2   string
		want bool
	}{
		{2, "a", 1, "z", true},
		{1, "z", 2, "a", false},
		{1, "b", 1, "a", true},
		{1, "a", 1, "a", false},
		{1, "ab", 1, "a", true},
		{1, "B", 1, "a", false}, // byte-wise: 'B' < 'a'
	}
	for _, tt := range tests {
		if got := newer(tt.t1, tt.c1, tt.t2, tt.c2); got != tt.want {
			t.Errorf("newer(%d,%q,%d,%q) = %v, want %v", tt.t1, tt.c1, tt.t2, tt.c2, got, tt.want)
		}
	}
}

// idOfLen is a change id of n bytes.
func idOfLen(n int) string { return strings.Repeat("c", n) }
