package policy

import (
	"errors"
	"regexp"
	"slices"
	"strings"
)

// Categories is the data category taxonomy that the event schemas annotate
// their fields with (the "data_category" attribute of an Avro field). It is
// the single list the whole project uses: the schemas helper annotates with
// these names, and a policy treatment whose category pattern matches none of
// them is rejected as "unknown data category pattern", so that a typo can
// never silently leave a category without its treatment.
//
// Names are dot-separated, most general first. Extend the list here (and in
// the schemas) when a schema needs a new category; do not modify it at run
// time. Use KnownCategories for a copy.
var Categories = []string{
	"user.id",
	"user.contact.email",
	"user.contact.phone",
	"user.contact.address",
	"user.contact.address.street",
	"user.contact.address.postal_code",
	"user.contact.address.city",
	"user.contact.address.country",
	"user.name",
	"user.device",
	"user.device.ip_address",
	"user.device.user_agent",
	"user.device.cookie_id",
	"user.device.id",
	"user.financial",
	"user.financial.card",
	"user.behavior.browsing",
	"user.behavior.purchase",
	"user.behavior.email",
	"user.health",
	"user.location.approximate",
	"user.location.precise",
	"user.demographic.age",
}

// KnownCategories returns a copy of Categories, the data categories that the
// event schemas use.
func KnownCategories() []string {
	return slices.Clone(Categories)
}

// patternSyntax is the shape of a category pattern: "*", an exact category
// "a.b.c", or a prefix wildcard "a.b.*".
var patternSyntax = regexp.MustCompile(`^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$`)

// MatchCategory reports whether the data category pattern matches category.
// The taxonomy is hierarchical: a category covers the categories below it.
//
// A pattern is one of
//
//	"*"               every (non-empty) category
//	"user.contact.*"  every category below user.contact (user.contact.email,
//	                  user.contact.address.street, ...), but not user.contact itself
//	"user.contact"    that category and every category below it
//
// The hierarchy matters most where a customer excludes a category from a
// grant: excluding user.contact.address must also exclude
// user.contact.address.street.
//
// An empty pattern or an empty category never matches: an unannotated field
// has no category, and its treatment is decided by the stream's
// unannotated_fields setting instead.
func MatchCategory(pattern, category string) bool {
	if pattern == "" || category == "" {
		return false
	}
	if pattern == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasSuffix(prefix, ".") {
		return len(category) > len(prefix) && strings.HasPrefix(category, prefix)
	}
	return pattern == category || strings.HasPrefix(category, pattern+".")
}

// patternCovers reports whether every category that b can match is also
// matched by a, whatever the taxonomy: a later treatment rule with pattern b
// is then unreachable behind a rule with pattern a.
func patternCovers(a, b string) bool {
	if a == "*" {
		return true
	}
	if b == "*" {
		return false
	}
	if base, ok := strings.CutSuffix(b, ".*"); ok {
		// b matches only categories strictly under base; a covers them
		// all if it matches base itself or everything under base.
		if MatchCategory(a, base) {
			return true
		}
		return strings.HasSuffix(a, ".*") && base == strings.TrimSuffix(a, ".*")
	}
	// b is a plain category: it matches b and what lies below b, all of
	// which a matches as soon as it matches b.
	return MatchCategory(a, b)
}

// knownPattern reports whether pattern matches at least one known category.
func knownPattern(pattern string) bool {
	for _, c := range Categories {
		if MatchCategory(pattern, c) {
			return true
		}
	}
	return false
}

// IsCategoryNode reports whether name is a node of the taxonomy: one of
// [Categories], or a dot-separated prefix of one ("user", "user.contact",
// "user.contact.address"). Names are case-sensitive and lower case.
func IsCategoryNode(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range Categories {
		if c == name || strings.HasPrefix(c, name+".") {
			return true
		}
	}
	return false
}

// ExclusionCategory returns the taxonomy node that a consent exclusion
// pattern names: x for both "x" and "x.*". It does not check that x is
// known; see [CheckExclusion].
func ExclusionCategory(pattern string) string {
	if base, ok := strings.CutSuffix(pattern, ".*"); ok {
		return base
	}
	return pattern
}

// CheckExclusion reports whether pattern is a valid data category exclusion
// of a consent grant (the excluded_categories of a consent change): a node x
// of the taxonomy ([IsCategoryNode]), written "x" or "x.*". Both forms mean
// the same: x and every category below it. Nothing else is accepted, so that
// an exclusion can never silently exclude nothing: not "*" (a grant that
// excludes every category is a denial), not a name outside the taxonomy
// ("health"), not another case ("User.Health"), not a wildcard elsewhere
// ("user.*.email"). Patterns are not rewritten: callers store what was sent.
//
// The error says what is wrong without repeating the pattern, which is
// untrusted input.
func CheckExclusion(pattern string) error {
	switch {
	case pattern == "":
		return errors.New("is empty")
	case pattern == "*":
		return errors.New(`is "*", which would exclude every category: send a DENY or a WITHDRAW instead`)
	}
	base := ExclusionCategory(pattern)
	if IsCategoryNode(base) {
		return nil
	}
	switch {
	case strings.Contains(base, "*"):
		return errors.New(`has a wildcard other than a final ".*": write a category x, or x.* (both mean x and everything below it)`)
	case IsCategoryNode(strings.ToLower(base)):
		return errors.New("is not lower case: data categories are lower case, e.g. user.health")
	case IsCategoryNode("user." + strings.ToLower(base)):
		return errors.New(`is not a full category path: data categories start at the root of the taxonomy ("user.")`)
	default:
		return errors.New("names no data category of the taxonomy: use a category such as user.contact.email (or user.contact.*); the list is pkg/policy Categories")
	}
}
