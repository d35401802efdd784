package policy

import (
	"strings"
	"testing"
)

func TestCheckExclusion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern string
		reason  string // part of the error; "" valid
	}{
		{"user.health", ""},
		{"user.health.*", ""},
		{"user.contact", ""}, // an inner node of the taxonomy
		{"user.contact.*", ""},
		{"user.contact.address.street", ""},
		{"user", ""},
		{"", "is empty"},
		{"*", "every category"},
		{"health", "full category path"},
		{"health.*", "full category path"},
		{"User.Health", "lower case"},
		{"USER.HEALTH.*", "lower case"},
		{"user.*.email", "wildcard"},
		{"user.health*", "wildcard"},
		{"user.healthy", "names no data category"},
		{"user.health.x", "names no data category"},
		{"user.health.", "names no data category"},
		{".user.health", "names no data category"},
		{"subject-4711@example.com", "names no data category"},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			t.Parallel()
			err := CheckExclusion(tc.pattern)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("CheckExclusion = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("CheckExclusion = %v, want %q", err, tc.reason)
			}
			if tc.pattern != "" && tc.pattern != "*" && strings.Contains(err.Error(), tc.pattern) {
				t.Errorf("error %q repeats the pattern", err)
			}
		})
	}
}

func TestExclusionCategory(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"user.health": "user.health", "user.health.*": "user.health", "*": "*"} {
		if got := ExclusionCategory(in); got != want {
			t.Errorf("ExclusionCategory(%q) = %q, want %q", in, got, want)
		}
	}
}
