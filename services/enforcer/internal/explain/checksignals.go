package explain

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/consentgate/consentgate/pkg/policy"
)

// signalWarnings returns, for a policy with a signals section, a warning
// for every rule that can never grant: one that reads an opt-out field
// (GPC, GPP and USP opt-outs) and maps only opt-in purposes. An objection
// withdraws those purposes, but "did not opt out" is no consent to an
// opt-in purpose (package signals), so the rule can only take consent
// away. That is often what the rule is for; the warning says so, so that
// nobody expects the signal to grant. A category rule on an opt-out field
// whose purposes (all of them when it names none) are all opt-in is the
// counterpart: its categories are excluded from every grant it applies
// to, whatever the customer said.
func signalWarnings(pol *policy.Policy, lines []string, source string) []*policy.Error {
	var out []*policy.Error
	optIn := func(ids []string) []string {
		var in []string
		for _, id := range ids {
			if p, ok := pol.Purpose(id); ok && !p.OptOut {
				in = append(in, id)
			}
		}
		return in
	}
	for _, r := range pol.Signals.Rules {
		f, ok := policy.LookupSignalField(r.Signal)
		if !ok || f.Kind != policy.SignalOptOut {
			continue
		}
		line, col := locate(lines, r.Signal, r.Line, r.Line+1)
		at := func(format string, args ...any) *policy.Error {
			return &policy.Error{Source: source, Line: line, Column: col, Problem: fmt.Sprintf(format, args...)}
		}
		switch {
		case !r.IsCategoryRule():
			if in := optIn(r.Purposes); len(in) == len(r.Purposes) {
				out = append(out, at("warning: signals rule %s can only take consent away, never grant: it reads an opt-out field and maps only opt-in purposes (%s); "+
					"an opt-out withdraws them, not opting out is no consent to them", r.Signal, strings.Join(in, ", ")))
			}
		default:
			ids := r.Purposes
			if len(ids) == 0 {
				for _, p := range pol.Purposes {
					ids = append(ids, p.ID)
				}
			}
			if in := optIn(ids); len(in) == len(ids) && len(in) > 0 {
				where := ""
				if len(r.Jurisdictions) > 0 {
					where = " (in " + strings.Join(r.Jurisdictions, ", ") + ", and where the jurisdiction is not known)"
				}
				out = append(out, at("warning: signals rule %s always excludes %s from grants of %s%s: it reads an opt-out field, and not opting out is no consent to an opt-in purpose",
					r.Signal, strings.Join(r.Categories, ", "), strings.Join(in, ", "), where))
			}
		}
	}
	return out
}

// writeSignalsSummary prints the signals part of a valid policy's summary:
// the sources no rule maps (signals from them change no consent) and, for
// the sources some rule maps, the catalogue fields no rule maps. A policy
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
