package decision

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
)

func TestExcludes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, category string
		want              bool
	}{
		{"user.health", "user.health", true},
		{"user.health.*", "user.health", true}, // x.* covers x itself
		{"user.health.*", "user.health.mental", true},
		{"user.health", "user.health.mental", true},
		{"user.health", "user.healthy", false},
		{"user.health.*", "user.healthy", false},
		{"user.contact.address.city", "user.contact.address.city", true},
		{"user.contact.address.city", "user.contact.address", true}, // the parent may hold the city
		{"user.contact.address.city", "user.contact", true},
		{"user.contact.address.city", "user", true},
		{"user.contact.address.city", "user.contact.email", false},
		{"user.contact.address.city", "user.contact.address.street", false},
		{"user.contact.*", "user.contact", true},
		{"user.contact.*", "user.contact.address.street", true},
		{"user.contact.*", "user.name", false},
		{"user.*", "user.health", true},
		{"*", "user.id", true},
		{"*", "", false}, // unannotated fields follow unannotated_fields
		{"user.health", "", false},
		{"", "user.health", false},
		// Patterns the taxonomy does not know cover everything: an
		// exclusion is never ignored.
		{"health", "user.id", true},
		{"User.Health", "user.contact.email", true},
		{"user.health.mental", "user.health", true}, // below a known category: known
		{"user.health.mental", "user.id", false},
		// A wildcard left after the final ".*" is not a category: such a
		// pattern (stored before exclusions were validated) must not
		// shrink to the parent it starts with.
		{"user.device.*.*", "user.device.ip_address", true},
		{"user.contact.address.*.*", "user.contact.address.city", true},
		{"user.device.*x", "user.device.id", true},
	}
	for _, tt := range tests {
		if got := Excludes(tt.pattern, tt.category); got != tt.want {
			t.Errorf("Excludes(%q, %q) = %v, want %v", tt.pattern, tt.category, got, tt.want)
		}
	}
}

// refExcludes is the reference for the property test: categories as lists
// of names; the exclusion covers a category when one list is a prefix of
// the other (the category is the excluded one, below it, or above it).
func refExcludes(pattern, category string) bool {
	if pattern == "" || category == "" {
		return false
	}
	if pattern == "*" {
		return true
	}
	p := strings.Split(pattern, ".")
	if p[len(p)-1] == "*" {
		p = p[:len(p)-1]
	}
	if slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, "*") }) {
		return true // no taxonomy name
	}
	related := func(a, b []string) bool {
		n := min(len(a), len(b))
		return slices.Equal(a[:n], b[:n])
	}
	known := false
	for _, c := range policy.Categories {
		if related(p, strings.Split(c, ".")) {
			known = true
		}
	}
	if !known {
		return true
	}
	return related(p, strings.Split(category, "."))
}

// TestExcludesMatchesReference: over the whole taxonomy, every category and
// every ancestor of one (as patterns, plain and with ".*", and as field
// categories), Excludes agrees with the reference, and the properties the
// contract names hold.
func TestExcludesMatchesReference(t *testing.T) {
	t.Parallel()
	var names []string
	for _, c := range policy.Categories {
		segs := strings.Split(c, ".")
		for i := 1; i <= len(segs); i++ {
			if n := strings.Join(segs[:i], "."); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	patterns := []string{"*", "", "health", "user.unknown", "user.contact.address.city.district", "user.device.*.*", "user.contact.address.*.*", "user.*.email"}
	for _, n := range names {
		patterns = append(patterns, n, n+".*")
	}
	cats := append([]string{""}, names...)
	for _, p := range patterns {
		for _, c := range cats {
			if got, want := Excludes(p, c), refExcludes(p, c); got != want {
				t.Errorf("Excludes(%q, %q) = %v, reference says %v", p, c, got, want)
			}
		}
	}
	for _, x := range names {
		for _, c := range cats {
			if Excludes(x, c) != Excludes(x+".*", c) {
				t.Errorf("%s and %s.* differ on %q", x, x, c)
			}
		}
		if !Excludes(x, x) {
			t.Errorf("%s does not exclude itself", x)
		}
	}
	// Random lists: Exclusions.Covers is the union of Excludes.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var list []string
		for range r.IntN(4) {
			list = append(list, patterns[r.IntN(len(patterns))])
		}
		x := NewExclusions(list)
		c := cats[r.IntN(len(cats))]
		want := slices.ContainsFunc(list, func(p string) bool { return refExcludes(p, c) })
		if _, got := x.Covers(c); got != want {
			t.Errorf("NewExclusions(%q).Covers(%q) = %v, want %v", list, c, got, want)
		}
	}
}
