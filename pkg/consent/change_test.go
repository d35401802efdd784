package consent

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/schemas"
	"github.com/linkedin/goavro/v2"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func validGrant() Change {
	return Change{
		ChangeID:           "c-1",
		SubjectID:          "subject-secret-42",
		Purpose:            "personalisation",
		Action:             ActionGrant,
		LegalBasis:         BasisConsent,
		ExcludedCategories: []string{"user.health.*"},
		Source:             "preference-centre",
		NoticeVersion:      "2025-01",
		CapturedAt:         t0,
		ExpiresAt:          t0.Add(365 * 24 * time.Hour),
	}
}

func TestChangeValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Change)
		fields []string // fields named by the errors; nil: valid
	}{
		{"valid grant", func(*Change) {}, nil},
		{"valid deny without metadata", func(c *Change) {
			c.Action, c.LegalBasis, c.Source, c.NoticeVersion = ActionDeny, "", "", ""
		}, nil},
		{"valid withdraw", func(c *Change) { c.Action = ActionWithdraw }, nil},
		{"valid erase without purpose", func(c *Change) {
			c.Action, c.Purpose, c.ExpiresAt = ActionErase, "", time.Time{}
		}, nil},
		{"empty change id", func(c *Change) { c.ChangeID = "" }, []string{"change_id"}},
		{"empty subject", func(c *Change) { c.SubjectID = "" }, []string{"subject_id"}},
		{"unknown action", func(c *Change) { c.Action = "MAYBE" }, []string{"action"}},
		{"grant without purpose", func(c *Change) { c.Purpose = "" }, []string{"purpose"}},
		{"deny without purpose", func(c *Change) { c.Action, c.Purpose = ActionDeny, "" }, []string{"purpose"}},
		{"reserved purpose", func(c *Change) { c.Purpose = "!erased" }, []string{"purpose"}},
		{"unknown legal basis", func(c *Change) { c.LegalBasis = "VIBES" }, []string{"legal_basis"}},
		{"grant without legal basis", func(c *Change) { c.LegalBasis = "" }, []string{"legal_basis"}},
		{"grant without source and notice", func(c *Change) { c.Source, c.NoticeVersion = "", "" },
			[]string{"source", "notice_version"}},
		{"empty excluded category", func(c *Change) { c.ExcludedCategories = []string{"a", ""} },
			[]string{"excluded_categories"}},
		{"zero captured_at", func(c *Change) { c.CapturedAt = time.Time{}; c.ExpiresAt = time.Time{} },
			[]string{"captured_at"}},
		{"expiry before capture", func(c *Change) { c.ExpiresAt = c.CapturedAt }, []string{"expires_at"}},
		{"everything wrong at once", func(c *Change) { *c = Change{Action: ActionGrant} },
			[]string{"change_id", "subject_id", "purpose", "captured_at", "legal_basis", "source", "notice_version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validGrant()
			tt.mutate(&c)
			err := c.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors for %v", tt.fields)
			}
			if !errors.Is(err, ErrInvalidChange) {
				t.Errorf("errors.Is(err, ErrInvalidChange) = false for %v", err)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a *FieldError", e)
				}
				got = append(got, fe.Field)
			}
			if !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("fields = %v, want %v", got, tt.fields)
			}
			if strings.Contains(err.Error(), "subject-secret-42") {
				t.Errorf("error %q leaks the subject id", err)
			}
		})
	}
}

func consentCodec(t testing.TB) *goavro.Codec {
	t.Helper()
	src, err := schemas.FS.ReadFile("consent_change.avsc")
	if err != nil {
		t.Fatalf("read schema: %v", err)
	}
	codec, err := goavro.NewCodec(string(src))
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	return codec
}

func TestNativeRoundTripThroughAvro(t *testing.T) {
	t.Parallel()
	codec := consentCodec(t)
	local := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   Change
		want Change // zero: same as in
	}{
		{name: "grant with expiry and exclusions", in: validGrant()},
		{name: "deny, no expiry, no exclusions", in: Change{
			ChangeID: "c-2", SubjectID: "s", Purpose: "ads", Action: ActionDeny,
			LegalBasis: BasisLegitimateInterest, Source: "cookie-banner", NoticeVersion: "v3",
			CapturedAt: t0,
		}},
		{name: "erase without purpose", in: Change{
			ChangeID: "c-3", SubjectID: "s", Action: ActionErase, LegalBasis: BasisContract,
			Source: "support-agent", NoticeVersion: "v3", CapturedAt: t0,
		}},
		{
			name: "local zone and sub-millisecond time normalised, empty basis defaulted",
			in: Change{
				ChangeID: "c-4", SubjectID: "s", Purpose: "p", Action: ActionWithdraw,
				ExcludedCategories: []string{}, CapturedAt: t0.In(local).Add(1234567 * time.Nanosecond),
			},
			want: Change{
				ChangeID: "c-4", SubjectID: "s", Purpose: "p", Action: ActionWithdraw,
				LegalBasis: BasisConsent, CapturedAt: t0.Add(time.Millisecond),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bin, err := codec.BinaryFromNative(nil, tt.in.Native())
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			native, rest, err := codec.NativeFromBinary(bin)
			if err != nil || len(rest) != 0 {
				t.Fatalf("decode: %v (%d bytes left)", err, len(rest))
			}
			got, err := ChangeFromNative(native.(map[string]any))
			if err != nil {
				t.Fatalf("ChangeFromNative: %v", err)
			}
			want := tt.want
			if want.ChangeID == "" {
				want = tt.in
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestChangeFromNativeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     map[string]any
		fields []string
	}{
		{"empty record", map[string]any{},
			[]string{"change_id", "subject_id", "action", "source", "notice_version", "captured_at"}},
		{"wrong types", map[string]any{
			"change_id": 1, "subject_id": "secret-subject", "action": "GRANT", "source": "s",
			"notice_version": "n", "captured_at": "yesterday", "excluded_categories": []any{"a", 2},
			"expires_at": map[string]any{"long.timestamp-millis": 3.5},
		}, []string{"change_id", "captured_at", "expires_at", "excluded_categories"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ChangeFromNative(tt.in)
			if err == nil {
				t.Fatal("ChangeFromNative() = nil error")
			}
			if !errors.Is(err, ErrInvalidChange) {
				t.Errorf("not ErrInvalidChange: %v", err)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				got = append(got, e.(*FieldError).Field)
			}
			if !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("fields = %v, want %v", got, tt.fields)
			}
			if strings.Contains(err.Error(), "secret-subject") {
				t.Errorf("error %q leaks a value", err)
			}
		})
	}
}

func TestChangeFromNativeDefaultsAndPlainValues(t *testing.T) {
	t.Parallel()
	got, err := ChangeFromNative(map[string]any{
		"change_id": "c", "subject_id": "s", "action": "GRANT", "source": "src",
		"notice_version": "n", "captured_at": t0.UnixMilli(), "purpose": "p",
		"excluded_categories": []string{"x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Change{
		ChangeID: "c", SubjectID: "s", Purpose: "p", Action: ActionGrant, LegalBasis: BasisConsent,
		ExcludedCategories: []string{"x"}, Source: "src", NoticeVersion: "n", CapturedAt: t0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestCheckCapturedBefore(t *testing.T) {
	t.Parallel()
	recv := time.UnixMilli(1_800_000_000_000)
	for _, tt := range []struct {
		name     string
		captured time.Time
		received time.Time
		ok       bool
	}{
		{"past", recv.Add(-time.Hour), recv, true},
		{"within skew", recv.Add(DefaultMaxClockSkew), recv, true},
		{"beyond skew", recv.Add(DefaultMaxClockSkew + time.Millisecond), recv, false},
		{"year 2999", time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC), recv, false},
		{"no receive time", time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Change{CapturedAt: tt.captured}.CheckCapturedBefore(tt.received, DefaultMaxClockSkew)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrInvalidChange) || !strings.HasPrefix(err.Error(), "captured_at:")) {
				t.Errorf("error %q is not a captured_at field error", err)
			}
		})
	}
}
