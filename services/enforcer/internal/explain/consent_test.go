package explain

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

func TestParseConsent(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 10, 9, 0, 0, 123e6, time.UTC)
	cases := []struct {
		name, json string
		want       *consent.State
		errHas     string
	}{
		{name: "empty input", json: "", want: nil},
		{name: "null", json: " null\n", want: nil},
		{name: "empty object", json: "{}", want: nil},
		{name: "full", json: `{"subject_id":"s","purposes":{"marketing":{"status":"granted","change_id":"c1",
			"captured_at":"2026-01-10T10:00:00.123456+01:00","expires_at":"2027-01-10T09:00:00Z","legal_basis":"LEGITIMATE_INTEREST",
			"excluded_categories":["user.health"],"source":"banner","notice_version":"3"}},"erased_at":null}`,
			want: &consent.State{SubjectID: "s", Purposes: map[string]consent.PurposeState{"marketing": {
				Status: consent.StatusGranted, ChangeID: "c1", CapturedAt: at, ExpiresAt: time.Date(2027, 1, 10, 9, 0, 0, 0, time.UTC),
				LegalBasis: consent.BasisLegitimateInterest, ExcludedCategories: []string{"user.health"}, Source: "banner", NoticeVersion: "3",
			}}}},
		{name: "legal basis defaults to CONSENT", json: `{"purposes":{"analytics":{"status":"denied","change_id":"c2","captured_at":"2026-01-10T09:00:00.123Z"}}}`,
			want: &consent.State{Purposes: map[string]consent.PurposeState{"analytics": {
				Status: consent.StatusDenied, ChangeID: "c2", CapturedAt: at, LegalBasis: consent.BasisConsent}}}},
		{name: "erased subject", json: `{"subject_id":"s","erased_at":"2026-01-10T09:00:00.123Z","erased_by":"c9"}`,
			want: &consent.State{SubjectID: "s", Purposes: map[string]consent.PurposeState{}, ErasedAt: at, ErasedBy: "c9"}},
		{name: "bad status", json: `{"purposes":{"marketing":{"status":"yes","change_id":"c","captured_at":"2026-01-10T09:00:00Z"}}}`,
			errHas: "purposes.marketing.status: want granted, denied or withdrawn"},
		{name: "bad legal basis", json: `{"purposes":{"marketing":{"status":"granted","change_id":"c","captured_at":"2026-01-10T09:00:00Z","legal_basis":"VITAL"}}}`,
			errHas: "purposes.marketing.legal_basis"},
		{name: "bad time names the key, not the value", json: `{"purposes":{"marketing":{"status":"granted","change_id":"c","captured_at":"last tuesday"}}}`,
			errHas: "purposes.marketing.captured_at: want an RFC 3339 time"},
		{name: "missing change id", json: `{"purposes":{"marketing":{"status":"granted","captured_at":"2026-01-10T09:00:00Z"}}}`,
			errHas: "purposes.marketing.change_id: missing"},
		{name: "every problem at once", json: `{"erased_at":"x","purposes":{"a":{"status":"granted","change_id":"c"},"b":{"status":"no"}}}`,
			errHas: "2026-11-22T08:00:00Z\npurposes.a.captured_at: missing"},
		{name: "unknown key", json: `{"purposes":{"marketing":{"status":"granted","change_id":"c","captured_at":"2026-01-10T09:00:00Z","expiry":"x"}}}`,
			errHas: `unknown field "expiry"`},
		{name: "trailing data", json: `{} {}`, errHas: "more than one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConsent([]byte(tc.json))
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want one containing %q", err, tc.errHas)
				}
				if strings.Contains(err.Error(), "last tuesday") {
					t.Errorf("error quotes the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}
