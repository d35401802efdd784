package decision

import (
	"strings"

	"github.com/consentgate/consentgate/pkg/policy"
)

// Excludes reports whether a grant that excludes the data category pattern
// leaves out a field annotated with category. It is the one rule of
// exclusion matching: Decide, package redact (which removes the excluded
// fields) and the enforcer's explain all use it, through Exclusions.
//
// A pattern is a category "x", its wildcard form "x.*" (the same), or "*".
// Excluding x covers
//
//   - x itself and every category below it (x.y, x.y.z): "x" and "x.*" are
//     the same exclusion;
//   - every category above x (the parent of x, its parent, ...): a field
//     annotated user.contact may hold a user.contact.address.city, so
//     excluding the city removes it (fail closed);
//
// and nothing else: excluding user.contact.address.city does not cover
// user.contact.email. "*" covers every category. An unannotated field
// (category "") is never covered: its treatment is the stream's
// unannotated_fields setting.
//
// A pattern that names no category of the taxonomy (policy.Categories: no
// known category is it, lies below it or above it), such as "health" or
// "User.Health", or one with a wildcard other than a final ".*"
// ("user.device.*.*"), cannot be matched with the taxonomy, so it covers every
// category: an exclusion is never ignored. Consent changes with such
// exclusions are rejected before they are stored; this rule covers states
// stored before that check existed.
func Excludes(pattern, category string) bool {
	if category == "" {
		return false
	}
	base, ok := exclusionBase(pattern)
	if !ok {
		return false
	}
	return covers(base, category)
}

// exclusionBase returns the category an exclusion pattern stands for: ""
// for every category ("*", or a pattern the taxonomy does not know); ok is
// false for an empty pattern, which excludes nothing.
func exclusionBase(pattern string) (base string, ok bool) {
	if pattern == "" {
		return "", false
	}
	base = strings.TrimSuffix(pattern, ".*")
	// A wildcard anywhere else ("x.*.*", "x.*y") is no taxonomy name: it
	// would otherwise be read as a child of x that covers only x's
	// ancestors.
	if strings.Contains(base, "*") || !knownBase(base) {
		return "", true
	}
	return base, true
}

// covers applies the hierarchy: base "" covers everything.
func covers(base, category string) bool {
	return base == "" || base == category || childOf(category, base) || childOf(base, category)
}

// childOf reports whether category lies below parent (parent + "." + ...),
// without building the prefix string.
func childOf(category, parent string) bool {
	return len(category) > len(parent) && category[len(parent)] == '.' && strings.HasPrefix(category, parent)
}

// knownBase reports whether some category of the taxonomy is base, lies
// below it or above it.
func knownBase(base string) bool {
	for _, c := range policy.Categories {
		if covers(base, c) {
			return true
		}
	}
	return false
}

// Exclusions are the excluded category patterns of a grant, prepared for
// matching many fields (see Excludes). The zero value excludes nothing.
type Exclusions struct {
	patterns []string
	bases    []string
}

// NewExclusions prepares patterns; empty patterns are ignored. Sets of one
// pattern are prepared once and shared (see planmemo.go).
func NewExclusions(patterns []string) Exclusions {
	if len(patterns) == 1 {
		return singleExclusion(patterns[0])
	}
	return newExclusions(patterns)
}

func newExclusions(patterns []string) Exclusions {
	var x Exclusions
	for _, p := range patterns {
		if base, ok := exclusionBase(p); ok {
			x.patterns = append(x.patterns, p)
			x.bases = append(x.bases, base)
		}
	}
	return x
}

// Empty reports whether nothing is excluded.
func (x Exclusions) Empty() bool { return len(x.bases) == 0 }

// Covers returns the first pattern that excludes category (see Excludes).
func (x Exclusions) Covers(category string) (pattern string, ok bool) {
	if category == "" {
		return "", false
	}
	for i, b := range x.bases {
		if covers(b, category) {
			return x.patterns[i], true
		}
	}
	return "", false
}

// CoversAny returns the first pattern that excludes one of categories.
func (x Exclusions) CoversAny(categories []string) (pattern string, ok bool) {
	for _, c := range categories {
		if p, ok := x.Covers(c); ok {
			return p, true
		}
	}
	return "", false
}
