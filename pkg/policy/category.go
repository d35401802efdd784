package policy

import (
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
	"user.contact.name",
	"user.device.ip_address",
	"user.device.user_agent",
	"user.device.id",
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
//
// A pattern is one of
//
//	"*"               every (non-empty) category
//	"user.contact.*"  every category below user.contact (user.contact.email,
//	                  user.contact.phone, ...), but not user.contact itself
//	"user.health"     exactly that category
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
	return pattern == category
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
	if strings.HasSuffix(b, ".*") {
		// b matches only categories under its prefix; a must match all of them.
		return strings.HasSuffix(a, ".*") && strings.HasPrefix(b, strings.TrimSuffix(a, "*"))
	}
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
