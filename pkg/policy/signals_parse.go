package policy

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Keys of the signals section, in documentation order.
var (
	signalsKeys    = []string{"precedence", "order", "tcf", "rules"}
	signalsTCFKeys = []string{"vendor_id"}
	signalRuleKeys = []string{"signal", "basis", "jurisdictions", "purposes", "categories"}
)

var jurisdictionSyntax = regexp.MustCompile(`^(EEA|[A-Z]{2}(-[A-Z0-9]{1,3})?)$`)

// signals reads the optional signals section. purposes maps the declared
// purpose ids to their lines; byID gives their declarations.
func (p *parser) signals(key, n *yaml.Node, purposes map[string]int, byID map[string]Purpose) Signals {
	s := Signals{Line: key.Line, Precedence: PrecedenceMostRestrictive}
	if isNull(n) {
		p.nodeErrorf(key, "signals is empty: give its rules, or leave the key out")
		return Signals{}
	}
	m, ok := p.mapping(n, "signals", signalsKeys)
	if !ok {
		return Signals{}
	}
	if e, ok := m["precedence"]; ok {
		v, ok := p.oneOf(e.val, "precedence", []string{string(PrecedenceMostRestrictive), string(PrecedenceOrdered)})
		if ok {
			s.Precedence = Precedence(v)
		}
	}
	if e, ok := m["order"]; ok {
		srcs, nodes, _ := p.stringList(e.val, "order")
		known := SignalSources()
		for i, src := range srcs {
			if !slices.Contains(known, src) {
				hint := ""
				if sug := suggest(src, known); sug != "" {
					hint = "; did you mean " + sug + "?"
				}
				p.nodeErrorf(nodes[i], "unknown signal source %s in order%s (sources: %s)", quote(src), hint, strings.Join(known, ", "))
				continue
			}
			s.Order = append(s.Order, src)
		}
		if s.Precedence != PrecedenceOrdered {
			p.nodeErrorf(e.key, "order is only for precedence: ordered: set precedence: ordered, or remove order (the most restrictive source wins)")
		} else if len(srcs) == 0 {
			p.nodeErrorf(e.val, "order is empty: list the signal sources from strongest to weakest")
		}
	} else if s.Precedence == PrecedenceOrdered {
		at := n
		if e, ok := m["precedence"]; ok {
			at = e.val
		}
		p.nodeErrorf(at, "precedence: ordered needs order: the signal sources from strongest to weakest (sources: %s)", strings.Join(SignalSources(), ", "))
	}
	if e, ok := m["tcf"]; ok {
		if tm, ok := p.mapping(e.val, "signals tcf", signalsTCFKeys); ok {
			if v, ok := tm["vendor_id"]; ok {
				s.TCFVendorID = p.vendorID(v.val)
			}
		}
	}
	e, ok := m["rules"]
	switch {
	case !ok:
		p.nodeErrorf(n, "signals has no rules: map at least one signal field to purposes or categories")
		return s
	case isEmpty(e.val):
		p.nodeErrorf(e.key, "signals has no rules: map at least one signal field to purposes or categories")
		return s
	}
	s.Rules = p.signalRules(e.val, purposes, byID)
	return s
}

func (p *parser) vendorID(n *yaml.Node) int {
	v, ok := p.scalar(n, "vendor_id")
	if !ok {
		return 0
	}
	id, err := strconv.Atoi(v)
	if err != nil || n.Tag != "!!int" || id < 1 || id > 65535 {
		p.nodeErrorf(n, "bad vendor_id %s: the controller's vendor id in the IAB Global Vendor List, 1 to 65535", quote(v))
		return 0
	}
	return id
}

// signalRules reads the rules list.
func (p *parser) signalRules(n *yaml.Node, purposes map[string]int, byID map[string]Purpose) []SignalRule {
	items, ok := p.list(n, "signals rules")
	if !ok {
		return nil
	}
	var out []SignalRule
	// decided maps "field|purpose" to the line of the rule that decides it.
	decided := map[string]int{}
	for _, it := range items {
		m, ok := p.mapping(it, "signal rule", signalRuleKeys)
		if !ok {
			continue
		}
		r, good := p.signalRule(it, m, purposes, byID)
		if good && !r.IsCategoryRule() {
			for _, pu := range r.Purposes {
				k := r.Signal + "|" + pu
				if first, dup := decided[k]; dup {
					p.nodeErrorf(it, "signal %s already maps purpose %s (rule at line %d): give each field and purpose one rule", r.Signal, quote(pu), first)
					good = false
					continue
				}
				decided[k] = it.Line
			}
		}
		if good {
			out = append(out, r)
		}
	}
	return out
}

// signalRule reads one rule.
func (p *parser) signalRule(it *yaml.Node, m map[string]entry, purposes map[string]int, byID map[string]Purpose) (SignalRule, bool) {
	r := SignalRule{Line: it.Line}
	good := true
	var field SignalField
	if e, ok := m["signal"]; !ok {
		p.nodeErrorf(it, "signal rule has no signal: name a signal field such as tcf.purpose.1, gpp.usnat.sale_opt_out, gpc or consent_mode.ad_user_data")
		good = false
	} else if name, ok := p.scalar(e.val, "signal"); !ok {
		good = false
	} else if f, known := LookupSignalField(name); !known {
		p.nodeErrorf(e.val, "unknown signal field %s%s", quote(name), signalFieldHint(name))
		good = false
	} else {
		r.Signal, field = name, f
	}

	basisNode := (*yaml.Node)(nil)
	if e, ok := m["basis"]; ok {
		basisNode = e.val
		v, ok := p.oneOf(e.val, "basis", []string{string(BasisConsent), string(BasisLegitimateInterest), string(BasisEither)})
		switch {
		case !ok:
			good = false
		case r.Signal != "" && !field.TakesBasis():
			p.nodeErrorf(e.key, "basis is only for TCF purpose fields (tcf.purpose.N, tcf.publisher.purpose.N, tcf.publisher.custom_purpose.N), not %s: remove it", r.Signal)
			good = false
		case v != string(BasisConsent) && slices.Contains(tcfNoLegitimateInterest, field.TCFPurpose):
			p.nodeErrorf(e.val, "basis %s: TCF purpose %d cannot rest on legitimate interest (TCF v2.2 allows only consent for purposes 1, 3, 4, 5 and 6)", v, field.TCFPurpose)
			good = false
		default:
			r.Basis = Basis(v)
		}
	} else if field.TakesBasis() {
		r.Basis = BasisConsent
	}

	if e, ok := m["jurisdictions"]; ok {
		js, nodes, ok := p.stringList(e.val, "jurisdictions")
		good = good && ok
		for i, j := range js {
			if j == "EU" {
				p.nodeErrorf(nodes[i], "jurisdiction \"EU\" is not used: write EEA (the EU member states, Iceland, Liechtenstein and Norway), or the countries")
				good = false
			} else if !jurisdictionSyntax.MatchString(j) {
				p.nodeErrorf(nodes[i], "bad jurisdiction %s: an ISO 3166-1 country code (DE, US), an ISO 3166-2 subdivision (US-CA), or EEA; upper case", quote(j))
				good = false
			} else if err := CheckJurisdiction(j); j != "EEA" && err != nil {
				p.nodeErrorf(nodes[i], "bad jurisdiction %s: it %v", quote(j), err)
				good = false
			}
		}
		if ok && len(js) == 0 {
			p.nodeErrorf(e.val, "jurisdictions is empty: list where the rule applies, or leave the key out for everywhere")
			good = false
		}
		r.Jurisdictions = js
	}

	if e, ok := m["purposes"]; ok {
		ids, nodes, ok := p.stringList(e.val, "signal rule purposes")
		good = good && ok
		for i, id := range ids {
			if _, known := purposes[id]; !known {
				p.nodeErrorf(nodes[i], "signal rule names unknown purpose %s: declare it under purposes", quote(id))
				good = false
			}
		}
		if ok && len(ids) == 0 {
			p.nodeErrorf(e.val, "purposes is empty: list the purposes the signal decides")
			good = false
		}
		r.Purposes = ids
	}
	if e, ok := m["categories"]; ok {
		cats, nodes, ok := p.stringList(e.val, "signal rule categories")
		good = good && ok
		for i, c := range cats {
			if err := CheckExclusion(c); err != nil {
				p.nodeErrorf(nodes[i], "signal rule category %s %v", quote(c), err)
				good = false
			}
		}
		if ok && len(cats) == 0 {
			p.nodeErrorf(e.val, "categories is empty: list the data categories the signal must allow")
			good = false
		}
		r.Categories = cats
		if basisNode != nil {
			p.nodeErrorf(basisNode, "basis is only for rules that decide purposes, not for a category rule")
			good = false
		}
	} else if _, ok := m["purposes"]; !ok {
		p.nodeErrorf(it, "signal rule has neither purposes nor categories: give the purposes the signal decides, or the categories it must allow")
		good = false
	}

	// A basis that a purpose's legal bases do not accept could never
	// allow it: refuse the rule rather than map a signal to nothing.
	if good && !r.IsCategoryRule() {
		for _, id := range r.Purposes {
			pu, declared := byID[id]
			if !declared {
				continue // an invalid purpose, reported already
			}
			switch r.Basis {
			case BasisLegitimateInterest:
				if !pu.Allows(LegalBasisLegitimateInterest) {
					p.nodeErrorf(it, "basis legitimate_interest, but purpose %s does not accept LEGITIMATE_INTEREST (its legal_bases at line %d): add it there, or use basis consent", id, pu.Line)
					good = false
				}
			case BasisEither:
				if !pu.Allows(LegalBasisLegitimateInterest) || !pu.Allows(LegalBasisConsent) {
					p.nodeErrorf(it, "basis either, but purpose %s does not accept both CONSENT and LEGITIMATE_INTEREST (its legal_bases at line %d)", id, pu.Line)
					good = false
				}
			default:
				if field.Kind == SignalOptIn && !pu.Allows(LegalBasisConsent) {
					p.nodeErrorf(it, "signal %s grants under CONSENT, but purpose %s does not accept CONSENT (its legal_bases at line %d)", r.Signal, id, pu.Line)
					good = false
				}
			}
		}
	}
	return r, good
}

// signalFieldHint explains an unknown signal field name: the closest known
// field, or what the fields of its source look like.
func signalFieldHint(name string) string {
	src, _, _ := strings.Cut(name, ".")
	if parts := strings.SplitN(name, ".", 3); src == "gpp" && len(parts) == 3 && slices.Contains(SignalSources(), "gpp."+parts[1]) {
		// A known section: name its fields, not a look-alike of another.
		var fs []string
		for _, f := range SignalFields() {
			if f.Source == "gpp."+parts[1] {
				fs = append(fs, f.Name)
			}
		}
		if s := suggest(name, fs); s != "" {
			return "; did you mean " + s + "?"
		}
		for i := range fs {
			fs[i] = strings.TrimPrefix(fs[i], "gpp."+parts[1]+".")
		}
		return "; the fields of gpp." + parts[1] + " are " + strings.Join(fs, ", ")
	}
	var names []string
	for _, f := range SignalFields() {
		names = append(names, f.Name)
	}
	if s := suggest(name, names); s != "" {
		return "; did you mean " + s + "?"
	}
	switch src {
	case "tcf":
		return "; TCF fields are tcf.purpose.1-11, tcf.special_feature.1-2, tcf.publisher.purpose.1-11, tcf.publisher.custom_purpose.1-63"
	case "gpp":
		var secs []string
		for _, s := range SignalSources() {
			if strings.HasPrefix(s, "gpp.") {
				secs = append(secs, strings.TrimPrefix(s, "gpp."))
			}
		}
		return "; GPP fields are gpp.<section>.<field>, sections: " + strings.Join(secs, ", ")
	case "consent_mode":
		return "; Consent Mode fields are consent_mode." + strings.Join(ConsentModeStates, ", consent_mode.")
	}
	return "; signal fields start with tcf., gpp., consent_mode. or are gpc"
}
