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
