package explain

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

// signalWarnings returns, for a policy with a signals section, a warning
// for every category rule that cannot narrow anything as written:
//
//   - a category rule that can never apply: a category rule only narrows a
//     GRANT the signals make (signals.Evaluate reads it for a GRANT
//     outcome only), so one whose purposes (all of them when it names
//     none) no rule that can grant maps excludes nothing, whatever the
//     customer sends. A rule can grant when it maps the purpose from an
//     opt-in field: an opt-out field (GPC, GPP and USP opt-outs) only
//     takes consent away ("did not opt out" is no consent, package
//     signals). A signals section of category rules only is the extreme
//     case: every one of them is warned about;
//   - a category rule on an opt-out field that is not an objection flag:
//     not opting out never allows a category, so the rule excludes its
//     categories from every grant it applies to, whatever the customer
//     said (the fields to map categories to are consent fields: TCF
//     special features, GPP consent fields).
//
// The rules on opt-out fields that decide purposes only ever take consent
// away too, but that is what they are for: writeSignalsSummary lists them
// as information, not as a warning each.
func signalWarnings(pol *policy.Policy, lines []string, source string) []*policy.Error {
	var out []*policy.Error
	grantable := grantablePurposes(pol)
	for _, r := range pol.Signals.Rules {
		if !r.IsCategoryRule() {
			continue
		}
		f, ok := policy.LookupSignalField(r.Signal)
		if !ok {
			continue
		}
		line, col := locate(lines, r.Signal, r.Line, r.Line+1)
		at := func(format string, args ...any) *policy.Error {
			return &policy.Error{Source: source, Line: line, Column: col, Problem: fmt.Sprintf(format, args...)}
		}
		ids := rulePurposes(pol, r)
		if !slices.ContainsFunc(ids, func(id string) bool { return grantable[id] }) {
			which := "no rule of the signals section maps a purpose from an opt-in field"
			if len(grantable) > 0 {
				which = "no rule that can grant (one on an opt-in field) maps " + strings.Join(ids, ", ")
			}
			out = append(out, at("warning: signals rule %s never applies: a category rule only narrows a GRANT the signals make, and %s; "+
				"the exclusion of %s can never be made", r.Signal, which, strings.Join(r.Categories, ", ")))
			continue
		}
		if f.Kind == policy.SignalOptOut && !f.Flag {
			var in []string
			for _, id := range ids {
				if grantable[id] {
					in = append(in, id)
				}
			}
			where := ""
			if len(r.Jurisdictions) > 0 {
				where = " (in " + strings.Join(r.Jurisdictions, ", ") + ", and where the jurisdiction is not known)"
			}
			out = append(out, at("warning: signals rule %s always excludes %s from grants of %s%s: it reads an opt-out field, and not opting out is no consent to a category; "+
				"map categories to consent fields (TCF special features, GPP consent fields)",
				r.Signal, strings.Join(r.Categories, ", "), strings.Join(in, ", "), where))
		}
	}
	return out
}

// signalCategoryWarnings returns a warning for every category of a signals
// category rule that no field of any schema in cat matches
// (policy.MatchCategory, as for a stream's category rules in ineffective):
// the exclusion the rule puts on a grant then removes nothing from any
// event, so the customer's refusal maps to nothing. The warning is on the
// rule's line.
func signalCategoryWarnings(pol *policy.Policy, cat *avrocodec.Catalog, lines []string, source string) []*policy.Error {
	var out []*policy.Error
	categories, _ := fieldCategories(cat.Schemas())
	for _, r := range pol.Signals.Rules {
		for _, c := range r.Categories {
			if matchesCategory(c, categories) {
				continue
			}
			line, col := locate(lines, r.Signal, r.Line, r.Line+1)
			out = append(out, &policy.Error{Source: source, Line: line, Column: col, Problem: fmt.Sprintf(
				"warning: signals rule %s: no field of a schema in the catalog has a category %s matches, so the exclusion removes nothing and the customer's refusal maps to nothing",
				r.Signal, c)})
		}
	}
	return out
}

// grantablePurposes are the purposes some signals rule can grant: a rule
// that maps them from an opt-in field.
func grantablePurposes(pol *policy.Policy) map[string]bool {
	out := map[string]bool{}
	for _, r := range pol.Signals.Rules {
		if f, ok := policy.LookupSignalField(r.Signal); !ok || r.IsCategoryRule() || f.Kind == policy.SignalOptOut {
			continue
		}
		for _, id := range r.Purposes {
			out[id] = true
		}
	}
	return out
}

// rulePurposes are the purposes a rule applies to: its own, or every
// purpose of the policy when it names none.
func rulePurposes(pol *policy.Policy, r policy.SignalRule) []string {
	if len(r.Purposes) > 0 {
		return r.Purposes
	}
	ids := make([]string, 0, len(pol.Purposes))
	for _, p := range pol.Purposes {
		ids = append(ids, p.ID)
	}
	return ids
}

// takeAwayRules are the signals rules that decide purposes from an opt-out
// field (GPC, GPP and USP opt-outs): an objection withdraws the purposes,
// not objecting grants nothing, so they only ever take consent away. In
// rule order, each field once.
func takeAwayRules(pol *policy.Policy) []string {
	var out []string
	for _, r := range pol.Signals.Rules {
		f, ok := policy.LookupSignalField(r.Signal)
		if ok && !r.IsCategoryRule() && f.Kind == policy.SignalOptOut && !slices.Contains(out, r.Signal) {
			out = append(out, r.Signal)
		}
	}
	return out
}

// writeSignalsSummary prints the signals part of a valid policy's summary:
// the sources no rule maps (signals from them change no consent), the
// rules that only take consent away (takeAwayRules) and, for the sources
// some rule maps, the catalogue fields no rule maps. A policy
// without a signals section prints nothing.
func writeSignalsSummary(w io.Writer, pol *policy.Policy) {
	sig := pol.Signals
	if len(sig.Rules) == 0 {
		return
	}
	fmt.Fprintf(w, "signals (%d rules, precedence %s", len(sig.Rules), precedence(sig))
	if sig.TCFVendorID > 0 {
		fmt.Fprintf(w, ", TCF vendor %d", sig.TCFVendorID)
	}
	fmt.Fprintln(w, "):")
	if u := sig.UnmappedSources(); len(u) > 0 {
		fmt.Fprintf(w, "  sources no rule maps (their signals change no consent): %s\n", strings.Join(u, ", "))
	}
	if t := takeAwayRules(pol); len(t) > 0 {
		fmt.Fprintf(w, "  rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): %s\n", strings.Join(t, ", "))
	}
	unmapped := sig.Unmapped()
	if len(unmapped) == 0 {
		return
	}
	fmt.Fprintln(w, "  fields no rule maps, of the sources mapped:")
	var sources []string
	bySource := map[string][]string{}
	for _, name := range unmapped {
		f, _ := policy.LookupSignalField(name)
		if _, ok := bySource[f.Source]; !ok {
			sources = append(sources, f.Source)
		}
		bySource[f.Source] = append(bySource[f.Source], name)
	}
	for _, src := range sources {
		fmt.Fprintf(w, "    %s: %s\n", src, strings.Join(compactFields(bySource[src]), ", "))
	}
}

func precedence(sig policy.Signals) string {
	if sig.Precedence == "" {
		return string(policy.PrecedenceMostRestrictive)
	}
	if sig.Precedence == policy.PrecedenceOrdered && len(sig.Order) > 0 {
		return string(sig.Precedence) + ": " + strings.Join(sig.Order, " > ")
	}
	return string(sig.Precedence)
}

// compactFields writes runs of numbered fields of one list as one entry:
// tcf.purpose.2, tcf.purpose.7, tcf.purpose.9, tcf.purpose.10 becomes
// tcf.purpose.{2,7,9-10}. Order is kept; other names stay as they are.
func compactFields(names []string) []string {
	var (
		out    []string
		prefix string
		nums   []int
	)
	flush := func() {
		if len(nums) == 0 {
			return
		}
		if len(nums) == 1 {
			out = append(out, prefix+strconv.Itoa(nums[0]))
		} else {
			out = append(out, prefix+"{"+ranges(nums)+"}")
		}
		nums = nil
	}
	for _, n := range names {
		i := strings.LastIndexByte(n, '.')
		num, err := strconv.Atoi(n[i+1:])
		if i < 0 || err != nil {
			flush()
			out = append(out, n)
			continue
		}
		if p := n[:i+1]; p != prefix {
			flush()
			prefix = p
		}
		nums = append(nums, num)
	}
	flush()
	return out
}

// ranges writes ascending numbers as "2,7,9-11".
func ranges(nums []int) string {
	nums = slices.Clone(nums)
	slices.Sort(nums)
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(nums[i]))
		} else {
			parts = append(parts, strconv.Itoa(nums[i])+"-"+strconv.Itoa(nums[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
