package consent

import (
	"errors"
	"math/rand/v2"
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
		{"ids at the bound", func(c *Change) {
			c.ChangeID, c.SubjectID = strings.Repeat("c", MaxGrantIDBytes), "subject-secret-42"+strings.Repeat("s", MaxIDBytes-17)
		}, nil},
		{"withdrawal's change id at the bound", func(c *Change) {
			c.Action, c.ChangeID = ActionWithdraw, strings.Repeat("c", MaxIDBytes)
		}, nil},
		{"grant's change id one byte over its bound", func(c *Change) { c.ChangeID = strings.Repeat("c", MaxGrantIDBytes+1) }, []string{"change_id"}},
		{"change id one byte over the bound", func(c *Change) { c.ChangeID = strings.Repeat("c", MaxIDBytes+1) }, []string{"change_id"}},
		{"subject one byte over the bound", func(c *Change) { c.SubjectID = "subject-secret-42" + strings.Repeat("s", MaxIDBytes-16) },
			[]string{"subject_id"}},
		{"over-long ids on an erasure", func(c *Change) {
			c.Action, c.Purpose, c.ExpiresAt = ActionErase, "", time.Time{}
			c.ChangeID, c.SubjectID = strings.Repeat("c", 300<<10), "subject-secret-42"+strings.Repeat("s", 200<<10)
		}, []string{"change_id", "subject_id"}},
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
		{"exclusion outside the taxonomy", func(c *Change) { c.ExcludedCategories = []string{"health"} },
			[]string{"excluded_categories"}},
		{"exclusion not lower case", func(c *Change) { c.ExcludedCategories = []string{"User.Health"} },
			[]string{"excluded_categories"}},
		{"exclusion of a near miss", func(c *Change) { c.ExcludedCategories = []string{"user.healthy.*"} },
			[]string{"excluded_categories"}},
		{"exclusion pattern in the middle", func(c *Change) { c.ExcludedCategories = []string{"user.*.email"} },
			[]string{"excluded_categories"}},
		{"exclusion of everything", func(c *Change) { c.ExcludedCategories = []string{"*"} },
			[]string{"excluded_categories"}},
		{"valid exclusions, both forms and inner nodes", func(c *Change) {
			c.ExcludedCategories = []string{"user.health", "user.health.*", "user.contact", "user.contact.address.*", "user.device.ip_address"}
		}, nil},
		{"withdrawal with a sloppy exclusion is still honoured", func(c *Change) {
			c.Action, c.ExcludedCategories = ActionWithdraw, []string{"Health", ""}
		}, nil},
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
			if strings.Contains(err.Error(), "subject-secret-42") || strings.Contains(err.Error(), "ccc") {
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

// TestBoundCapturedAt is the table of the clock rule shared by the intake
// and consent-sync.
func TestBoundCapturedAt(t *testing.T) {
	t.Parallel()
	const skew = time.Minute
	recv := time.UnixMilli(1_800_000_000_000).UTC()
	y2999 := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		action   Action
		captured time.Time
		received time.Time
		want     time.Time // zero: rejected
	}{
		{"grant in the past", ActionGrant, recv.Add(-time.Hour), recv, recv.Add(-time.Hour)},
		{"grant at receipt", ActionGrant, recv, recv, recv},
		{"grant a little ahead: moved back to receipt", ActionGrant, recv.Add(30 * time.Second), recv, recv},
		{"grant at the bound: moved back to receipt", ActionGrant, recv.Add(skew), recv, recv},
		{"grant beyond the bound: rejected", ActionGrant, recv.Add(skew + time.Millisecond), recv, time.Time{}},
		{"grant in 2999: rejected", ActionGrant, y2999, recv, time.Time{}},
		{"grant, no receive time", ActionGrant, y2999, time.Time{}, y2999},
		{"withdraw in the past", ActionWithdraw, recv.Add(-time.Hour), recv, recv.Add(-time.Hour)},
		{"withdraw a little ahead keeps its date", ActionWithdraw, recv.Add(30 * time.Second), recv, recv.Add(30 * time.Second)},
		{"withdraw at the bound keeps its date", ActionWithdraw, recv.Add(skew), recv, recv.Add(skew)},
		{"withdraw beyond the bound: moved to the bound", ActionWithdraw, recv.Add(5 * time.Minute), recv, recv.Add(skew)},
		{"deny in 2999: moved to the bound", ActionDeny, y2999, recv, recv.Add(skew)},
		{"erase in 2999: moved to the bound", ActionErase, y2999, recv, recv.Add(skew)},
		{"erase, no receive time", ActionErase, y2999, time.Time{}, y2999},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := Change{ChangeID: "c", SubjectID: "subject-secret-42", Purpose: "p", Action: tt.action, CapturedAt: tt.captured}
			got, err := in.BoundCapturedAt(tt.received, skew)
			if tt.want.IsZero() {
				if err == nil {
					t.Fatalf("accepted with captured_at %v, want rejected", got.CapturedAt)
				}
				if !errors.Is(err, ErrInvalidChange) || !strings.HasPrefix(err.Error(), "captured_at:") {
					t.Errorf("error %q is not a captured_at field error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !got.CapturedAt.Equal(tt.want) {
				t.Errorf("captured_at %v, want %v", got.CapturedAt, tt.want)
			}
			got.CapturedAt = in.CapturedAt
			if !reflect.DeepEqual(got, in) {
				t.Errorf("changed more than captured_at: %+v", got)
			}
		})
	}
}

// TestBoundCapturedAtProperties checks, over random changes and receive
// times, what makes the intake and the consumer decide alike and keeps
// withdrawals safe:
//   - restrictive changes are never rejected;
//   - every accepted captured_at is at most received+skew, and a grant's at
//     most received;
//   - idempotent and monotone: a bounded change passes again, unchanged,
//     with the same or any later receive time (the consumer's record time);
//   - a restrictive change received after a grant beats it, when its own
//     clock is not slow.
func TestBoundCapturedAtProperties(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	base := int64(1_800_000_000_000)
	actions := []Action{ActionGrant, ActionDeny, ActionWithdraw, ActionErase}
	for i := 0; i < 20000; i++ {
		skew := time.Duration(1+r.IntN(20*60_000)) * time.Millisecond
		recv := time.UnixMilli(base + r.Int64N(3_600_000))
		offset := r.Int64N(4*3_600_000) - 3_600_000 // the client clock: -1h .. +3h
		c := Change{ChangeID: "c", SubjectID: "s", Purpose: "p", Action: actions[r.IntN(4)], CapturedAt: recv.Add(time.Duration(offset) * time.Millisecond)}
		got, err := c.BoundCapturedAt(recv, skew)
		if err != nil {
			if c.Action.Restrictive() {
				t.Fatalf("%s rejected: %v", c.Action, err)
			}
			continue
		}
		limit := recv.Add(skew)
		if c.Action == ActionGrant {
			limit = recv
		}
		if got.CapturedAt.After(limit) {
			t.Fatalf("%s accepted at %v, after %v", c.Action, got.CapturedAt, limit)
		}
		later := recv.Add(time.Duration(r.Int64N(10_000)) * time.Millisecond)
		again, err := got.BoundCapturedAt(later, skew)
		if err != nil || !again.CapturedAt.Equal(got.CapturedAt) {
			t.Fatalf("not stable: %v then %v (%v)", got.CapturedAt, again.CapturedAt, err)
		}
		if c.Action == ActionGrant {
			// A withdrawal made later than this grant reached the
			// pipeline, by a clock that is right or fast, received later.
			wRecv := recv.Add(time.Duration(1+r.Int64N(60_000)) * time.Millisecond)
			made := recv.Add(time.Duration(1+r.Int64N(wRecv.Sub(recv).Milliseconds())) * time.Millisecond)
			w := Change{ChangeID: "a", SubjectID: "s", Purpose: "p", Action: ActionWithdraw,
				CapturedAt: made.Add(time.Duration(r.Int64N(3*3_600_000)) * time.Millisecond)}
			bw, err := w.BoundCapturedAt(wRecv, skew)
			if err != nil || !bw.CapturedAt.After(got.CapturedAt) {
				t.Fatalf("withdrawal %v does not beat the grant %v (%v)", bw.CapturedAt, got.CapturedAt, err)
			}
		}
	}
}
