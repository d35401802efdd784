package enforce

// The reference model of refmodel_test.go: a small restatement of the
// consent and enforcement semantics, written from the documentation
// (README.md "Consent semantics", "Topics", "Clock rule and exclusions";
// pkg/policy/README.md; pkg/consent/doc.go; pkg/decision and pkg/redact
// package docs), not from the code. It imports none of the packages it
// models (consent, decision, redact, policy): it has its own schema tree
// (parsed from the .avsc JSON), its own consent fold, its own decision and
// its own treatments, each as plain as it can be.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ---------------------------------------------------------------------------
// Schemas: the model's own view of an .avsc file.

type mType struct {
	kind     string // record, enum, array, map, union, null, string, int, long, boolean, timestamp-millis, float, double, bytes
	name     string // full name (record, enum)
	aliases  []string
	fields   []*mField
	items    *mType // array items, map values
	branches []*mType
	symbols  []string
}

type mField struct {
	name    string
	aliases []string
	cat     string // data_category, "" when unannotated
	typ     *mType
}

type mSchema struct {
	fullName string
	root     *mType
}

func parseModelSchema(text string) (*mSchema, error) {
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, err
	}
	named := map[string]*mType{}
	root, err := convType(v, "", named)
	if err != nil {
		return nil, err
	}
	return &mSchema{fullName: root.name, root: root}, nil
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func convType(v any, ns string, named map[string]*mType) (*mType, error) {
	switch x := v.(type) {
	case string:
		switch x {
		case "null", "string", "int", "long", "boolean", "float", "double", "bytes":
			return &mType{kind: x}, nil
		}
		if t, ok := named[fullName(x, ns)]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type %q", x)
	case []any:
		t := &mType{kind: "union"}
		for _, b := range x {
			bt, err := convType(b, ns, named)
			if err != nil {
				return nil, err
			}
			t.branches = append(t.branches, bt)
		}
		return t, nil
	case map[string]any:
		typ, _ := x["type"].(string)
		if lt, _ := x["logicalType"].(string); lt == "timestamp-millis" && typ == "long" {
			return &mType{kind: "timestamp-millis"}, nil
		}
		switch typ {
		case "record":
			name, _ := x["name"].(string)
			if n, _ := x["namespace"].(string); n != "" && !strings.Contains(name, ".") {
				ns = n
			}
			t := &mType{kind: "record", name: fullName(name, ns), aliases: strs(x["aliases"])}
			named[t.name] = t
			for _, f := range x["fields"].([]any) {
				fm := f.(map[string]any)
				ft, err := convType(fm["type"], ns, named)
				if err != nil {
					return nil, err
				}
				cat, _ := fm["data_category"].(string)
				t.fields = append(t.fields, &mField{name: fm["name"].(string), aliases: strs(fm["aliases"]), cat: cat, typ: ft})
			}
			return t, nil
		case "enum":
			name, _ := x["name"].(string)
			t := &mType{kind: "enum", name: fullName(name, ns), symbols: strs(x["symbols"])}
			named[t.name] = t
			return t, nil
		case "array":
			it, err := convType(x["items"], ns, named)
			return &mType{kind: "array", items: it}, err
		case "map":
			it, err := convType(x["values"], ns, named)
			return &mType{kind: "map", items: it}, err
		default:
			return convType(typ, ns, named)
		}
	}
	return nil, fmt.Errorf("bad schema node %T", v)
}

func strs(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, s := range a {
			out = append(out, s.(string))
		}
	}
	return out
}

// unionKey is goavro's wrapper key for a union branch.
func unionKey(t *mType) string {
	switch t.kind {
	case "record", "enum":
		return t.name
	case "timestamp-millis":
		return "long.timestamp-millis"
	}
	return t.kind
}

// nonNull returns the non-null branch of a ["null", X] union (or t).
func nonNull(t *mType) *mType {
	if t.kind != "union" {
		return t
	}
	for _, b := range t.branches {
		if b.kind != "null" {
			return b
		}
	}
	return nil
}

// readerField pairs writer field wf with the reader record's field as Avro
// schema resolution does: same name, or an alias of either.
func readerField(r *mType, wf *mField) *mField {
	if r == nil {
		return nil
	}
	for _, rf := range r.fields {
		if rf.name == wf.name {
			return rf
		}
	}
	for _, rf := range r.fields {
		if slices.Contains(rf.aliases, wf.name) || slices.Contains(wf.aliases, rf.name) {
			return rf
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Policy: the test policy (testdata/refmodel_policy.yaml), restated.

type mPurpose struct {
	bases  []string
	optOut bool
}

type mRule struct {
	category   string // a pattern, or
	field      string // a field path
	action     string
	encryption string // action encrypt: deterministic or randomised ("" is randomised)
}

// The model's two encrypt actions (a rule's action and mode in one).
const (
	encDet  = "encrypt-deterministic"
	encRand = "encrypt-randomised"
)

func isEncrypt(a string) bool { return a == encDet || a == encRand }

// ruleAction is a rule's action, an encrypt rule's with its mode.
func (r mRule) ruleAction() string {
	if r.action != "encrypt" {
		return r.action
	}
	if r.encryption == "deterministic" {
		return encDet
	}
	return encRand
}

// defaultAction: default_treatment encrypt is always randomised.
func (s mStream) defaultAction() string {
	if s.defaultTreatment == "encrypt" {
		return encRand
	}
	return s.defaultTreatment
}

// everyOutput says whether a field (rule path, categories of both
// versions) is encrypted on every output of s: its first matching rule,
// for its path and any of its categories, is encrypt; deterministic only
// when every category that meets an encrypt rule first meets a
// deterministic one (randomised otherwise: it reveals the least).
func everyOutput(s mStream, path string, cats []string) (string, bool) {
	cs := cats
	if len(cs) == 0 {
		cs = []string{""}
	}
	found, det := false, true
	for _, c := range cs {
		for _, r := range s.rules {
			if (r.field != "" && r.field == path) || (r.category != "" && matchRule(r.category, c)) {
				if a := r.ruleAction(); isEncrypt(a) {
					found = true
					det = det && a == encDet
				}
				break
			}
		}
	}
	switch {
	case !found:
		return "", false
	case det:
		return encDet, true
	}
	return encRand, true
}

type mStream struct {
	topic            string
	purposes         []string
	schemas          []string // nil: all
	redact           bool     // on_missing_consent: redact
	removeUnannot    bool     // unannotated_fields: remove
	dropExcluded     bool     // excluded_categories: drop
	rules            []mRule
	defaultTreatment string
	google           bool // google_consent_mode: true
}

var refPurposes = map[string]mPurpose{
	"marketing":       {bases: []string{"CONSENT"}},
	"analytics":       {bases: []string{"CONSENT", "LEGITIMATE_INTEREST"}},
	"personalisation": {bases: []string{"CONSENT"}},
	"sale":            {bases: []string{"CONSENT", "CONTRACT"}, optOut: true},
	"ads":             {bases: []string{"CONSENT"}, optOut: true},
}

var refStreams = []mStream{
	{topic: "compliant.marketing", purposes: []string{"marketing"}, defaultTreatment: "remove"},
	{topic: "compliant.marketing_strict", purposes: []string{"marketing"}, dropExcluded: true, defaultTreatment: "remove",
		schemas: []string{"consentgate.events.EmailEngagement", "consentgate.events.Purchase"}},
	{topic: "compliant.analytics", purposes: []string{"analytics"}, redact: true, removeUnannot: true, defaultTreatment: "remove", google: true,
		rules: []mRule{
			{field: "event_id", action: "keep"},
			{field: "occurred_at", action: "generalise_hour"},
			{category: "user.id", action: "pseudonymise"},
			{category: "user.device.ip_address", action: "truncate_ip"},
			{category: "user.contact.*", action: "mask"},
			{category: "user.behavior.*", action: "keep"},
		}},
	{topic: "compliant.sale", purposes: []string{"sale"}, removeUnannot: true, defaultTreatment: "remove",
		rules: []mRule{{field: "event_id", action: "keep"}, {field: "occurred_at", action: "generalise_day"}}},
	{topic: "compliant.ads", purposes: []string{"ads", "personalisation"}, redact: true, defaultTreatment: "mask", google: true,
		rules: []mRule{
			{category: "user.location.*", action: "generalise_day"},
			{category: "user.device", action: "pseudonymise"},
			{category: "user.contact.address", action: "mask"},
			{category: "user.financial", action: "keep"},
			{category: "user.health", action: "keep"},
			{field: "items[].sku", action: "pseudonymise"},
		}},
	{topic: "compliant.purchases", purposes: []string{"personalisation"}, schemas: []string{"consentgate.events.Purchase"},
		removeUnannot: true, defaultTreatment: "remove",
		rules: []mRule{{field: "event_id", action: "keep"}, {field: "currency", action: "keep"}}},
}

// ---------------------------------------------------------------------------
// Consent: a history of changes and its verdict.

type mChange struct {
	id, purpose, action, basis string
	excluded                   []string
	at, expires                int64 // Unix ms; expires 0: none
}

// newerThan: later captured_at, or the same millisecond and the greater
// change id, compared byte by byte.
func (a mChange) newerThan(b mChange) bool {
	if a.at != b.at {
		return a.at > b.at
	}
	return a.id > b.id
}

type mVerdict struct {
	allowed          bool
	reason, changeID string
	basis            string
	excluded         []string
}

// verdict of the (valid, applied) changes hist for purpose at now.
func verdict(hist []mChange, purpose string, now int64) mVerdict {
	if len(hist) == 0 {
		return mVerdict{reason: "unknown_subject"}
	}
	var win, erase *mChange
	for i := range hist {
		c := &hist[i]
		switch {
		case c.action == "ERASE":
			if erase == nil || c.newerThan(*erase) {
				erase = c
			}
		case c.purpose == purpose:
			if win == nil || c.newerThan(*win) {
				win = c
			}
		}
	}
	if win != nil && erase != nil && !win.newerThan(*erase) {
		win = nil // the erasure forgot it
	}
	if win == nil {
		if erase != nil {
			return mVerdict{reason: "erased", changeID: erase.id}
		}
		return mVerdict{reason: "never_asked"}
	}
	v := mVerdict{changeID: win.id, basis: win.basis, excluded: win.excluded}
	switch win.action {
	case "GRANT":
		if win.expires != 0 && now >= win.expires {
			v.reason = "expired"
		} else {
			v.allowed, v.reason = true, "granted"
		}
	case "DENY":
		v.reason = "denied"
	case "WITHDRAW":
		v.reason = "withdrawn"
	}
	return v
}

// ---------------------------------------------------------------------------
// Categories.

// excludes: excluding x (or x.*) covers x, everything below x and every
// category above x; nothing else. An unannotated field is never covered.
func excludes(pattern, category string) bool {
	if category == "" {
		return false
	}
	x := strings.TrimSuffix(pattern, ".*")
	return category == x || strings.HasPrefix(category, x+".") || strings.HasPrefix(x, category+".")
}

// matchRule is a treatment's category pattern: "*" every category, "x.*"
// strictly below x, "x" x and below.
func matchRule(pattern, category string) bool {
	if category == "" {
		return false
	}
	if pattern == "*" {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, ".*"); ok {
		return strings.HasPrefix(category, base+".")
	}
	return category == pattern || strings.HasPrefix(category, pattern+".")
}

// ---------------------------------------------------------------------------
// The decision.

type mDecision struct {
	outcome, reason, purpose, changeID string
	// consents: purpose and deciding change id of every purpose checked
	consents [][2]string
	// what is published (outcome not DROPPED):
	forward  bool     // the input bytes, unchanged
	redact   bool     // a copy, every field per the stream's rules; else excluded removed + unannotated_fields
	excluded []string // the exclusions of every allowed purpose
	// allowed: every purpose allowed, in the stream's order, with the
	// legal basis of its grant (or OPT_OUT_NOT_OBJECTED) and the grant's
	// change id ("" for an opt-out never objected to)
	allowed []mAllowed
}

type mAllowed struct{ purpose, basis, changeID string }

func accepts(s mStream, schema string) bool {
	return len(s.schemas) == 0 || slices.Contains(s.schemas, schema)
}

// fieldInfo is one field the writer's bytes carry.
type fieldInfo struct {
	wPath, rPath string // schema paths (items[].sku); rPath "" when the reader lacks it
	cats         []string
}

// carried lists the writer's fields, with the categories of both versions.
func carried(w, r *mType, wp, rp string, out *[]fieldInfo) {
	for _, wf := range w.fields {
		rf := readerField(r, wf)
		fi := fieldInfo{wPath: joinPath(wp, wf.name)}
		if wf.cat != "" {
			fi.cats = append(fi.cats, wf.cat)
		}
		var rt *mType
		if rf != nil {
			fi.rPath = joinPath(rp, rf.name)
			if rf.cat != "" && !slices.Contains(fi.cats, rf.cat) {
				fi.cats = append(fi.cats, rf.cat)
			}
			rt = rf.typ
		}
		*out = append(*out, fi)
		wt := nonNull(wf.typ)
		var rtt *mType
		if rt != nil {
			rtt = nonNull(rt)
		}
		suffix := ""
		if wt.kind == "array" || wt.kind == "map" {
			suffix = map[string]string{"array": "[]", "map": "{}"}[wt.kind]
			if rtt != nil && rtt.kind == wt.kind {
				rtt = nonNull(rtt.items)
			} else {
				rtt = nil
			}
			wt = nonNull(wt.items)
		}
		if wt.kind == "record" {
			if rtt != nil && rtt.kind != "record" {
				rtt = nil
			}
			rps := ""
			if fi.rPath != "" {
				rps = fi.rPath + suffix
			}
			carried(wt, rtt, fi.wPath+suffix, rps, out)
		}
	}
}

func joinPath(p, name string) string {
	if p == "" {
		return name
	}
	return p + "." + name
}

// fieldRule returns the action of a field rule for path.
func fieldRule(s mStream, path string) (string, bool) {
	for _, r := range s.rules {
		if r.field != "" && r.field == path {
			return r.ruleAction(), true
		}
	}
	return "", false
}

func decide(s mStream, schema string, fields []fieldInfo, hist []mChange, now int64) mDecision {
	d := mDecision{outcome: "DROPPED", purpose: s.purposes[0]}
	if !accepts(s, schema) {
		d.reason = "schema_not_accepted"
		return d
	}
	missing := false
	for i, p := range s.purposes {
		pur := refPurposes[p]
		v := verdict(hist, p, now)
		d.consents = append(d.consents, [2]string{p, v.changeID})
		allowed, reason := v.allowed, v.reason
		if allowed && !slices.Contains(pur.bases, v.basis) {
			allowed, reason = false, "legal_basis_not_accepted"
		}
		if !allowed && pur.optOut && (reason == "never_asked" || reason == "unknown_subject") {
			allowed, reason = true, "opt_out_not_exercised"
		}
		if !allowed && !missing {
			missing = true
			d.purpose, d.reason, d.changeID = p, reason, v.changeID
		}
		if i == 0 && !missing {
			d.reason, d.changeID = reason, v.changeID
		}
		if allowed {
			d.excluded = append(d.excluded, v.excluded...)
			if reason == "opt_out_not_exercised" {
				d.allowed = append(d.allowed, mAllowed{purpose: p, basis: "OPT_OUT_NOT_OBJECTED"})
			} else {
				d.allowed = append(d.allowed, mAllowed{purpose: p, basis: v.basis, changeID: v.changeID})
			}
		}
	}
	if missing {
		if s.redact {
			d.outcome, d.redact = "REDACTED", true
		}
		return d
	}
	hasExcluded, needsCopy := false, false
	for _, f := range fields {
		for _, c := range f.cats {
			for _, x := range d.excluded {
				if excludes(x, c) {
					hasExcluded = true
				}
			}
		}
		path := f.rPath
		if path == "" {
			path = f.wPath
		}
		if _, enc := everyOutput(s, path, f.cats); enc {
			// An encrypt rule applies on every output: no forwarding.
			needsCopy = true
		}
		if len(f.cats) == 0 && s.removeUnannot {
			if a, ok := fieldRule(s, path); !ok || a != "keep" {
				needsCopy = true
			}
		}
	}
	switch {
	case hasExcluded && s.dropExcluded:
		d.reason = "excluded_category"
	case hasExcluded:
		d.outcome, d.reason = "REDACTED", "granted_with_exclusions"
	default:
		d.outcome, d.forward = "PASSED", !needsCopy
	}
	return d
}

// ---------------------------------------------------------------------------
// What each field of a published copy must hold.

// want says what an output must do with one value of the input.
type want int

const (
	wantKeep      want = iota // the value, unchanged
	wantGone                  // not the value (removed: null, default or zero)
	wantTransform             // changed to expect
	wantEncrypt               // a ciphertext (det: deterministic) under the subject's key that decrypts to expect
)

// leafExp is the expectation for one leaf value of one event on one stream.
type leafExp struct {
	wInst, rInst string // instance paths (items[1].sku) in the writer's and the reader's layout; rInst "" for writer-only
	input        any    // the input value (unwrapped)
	want         want
	expect       any // wantTransform: the treated value
	action       string
	// noLocate: a map key or value, checked in the raw bytes only.
	noLocate bool
	// str: an Avro string, whose bytes are searched for in the output.
	str bool
	// det: wantEncrypt deterministically.
	det bool
	// inMap: an encrypted map's value, found in the map at instance
	// paths mapW / mapR under the deterministic ciphertext of mapKey.
	inMap      bool
	mapW, mapR string
	mapKey     string
}

// treater computes the expectations of a copy.
type treater struct {
	s        mStream
	redact   bool
	excluded []string
	key      []byte
	hasKey   bool // the subject has a data key: else every field to encrypt is removed
	out      []leafExp
}

func rewriting(a string) bool {
	switch a {
	case "pseudonymise", "mask", "truncate_ip", "generalise_hour", "generalise_day", encDet, encRand:
		return true
	}
	return false
}

func (t *treater) isExcluded(cats []string) bool {
	for _, c := range cats {
		for _, x := range t.excluded {
			if excludes(x, c) {
				return true
			}
		}
	}
	return false
}

// action of a field (schema path rulePath) with categories cats, below a
// field whose action is inherit ("" at the top or below keep).
func (t *treater) action(rulePath string, cats []string, inherit string) string {
	if t.isExcluded(cats) {
		return "remove"
	}
	if !t.redact {
		// Encrypt rules apply on every output; inside an encrypted field
		// every value is encrypted (in its own rule's mode if that is
		// encrypt) unless excluded.
		if a, ok := everyOutput(t.s, rulePath, cats); ok {
			return a
		}
		if isEncrypt(inherit) {
			// unannotated_fields: remove, a setting of every output,
			// still removes an unannotated field without a field rule
			// (docs silent; the enforcer removes: fail closed).
			if _, ok := fieldRule(t.s, rulePath); len(cats) == 0 && t.s.removeUnannot && !ok {
				return "remove"
			}
			if a, ok := fieldRule(t.s, rulePath); ok && a == "remove" {
				return "remove"
			}
			return inherit
		}
		if len(cats) == 0 && t.s.removeUnannot {
			if a, ok := fieldRule(t.s, rulePath); ok {
				return a
			}
			return "remove"
		}
		return "keep"
	}
	if len(cats) == 0 && rewriting(inherit) {
		if a, ok := fieldRule(t.s, rulePath); ok {
			if isEncrypt(inherit) && a != "remove" && !isEncrypt(a) {
				return inherit
			}
			return a
		}
		return inherit
	}
	cs := cats
	if len(cs) == 0 {
		cs = []string{""}
	}
	var got []string
	for _, c := range cs {
		got = append(got, t.treatmentFor(rulePath, c))
	}
	for _, a := range got[1:] {
		if a != got[0] {
			return "remove" // the versions' categories disagree
		}
	}
	if isEncrypt(inherit) && got[0] != "remove" && !isEncrypt(got[0]) {
		return inherit // inside an encrypted field: encrypted unless removed
	}
	return got[0]
}

func (t *treater) treatmentFor(path, cat string) string {
	for _, r := range t.s.rules {
		if (r.field != "" && r.field == path) || (r.category != "" && matchRule(r.category, cat)) {
			return r.ruleAction()
		}
	}
	if cat != "" {
		return t.s.defaultAction()
	}
	if t.s.removeUnannot {
		return "remove"
	}
	return "keep"
}

// record walks writer record w (reader counterpart r, nil for writer-only
// values) holding value v.
func (t *treater) record(w, r *mType, v map[string]any, wInst, rInst, rSchema string, inherit string) {
	for _, wf := range w.fields {
		rf := readerField(r, wf)
		var cats []string
		if wf.cat != "" {
			cats = append(cats, wf.cat)
		}
		wi := joinPath(wInst, wf.name)
		ri, rs := "", ""
		var rt *mType
		if rf != nil && r != nil {
			ri, rs, rt = joinPath(rInst, rf.name), joinPath(rSchema, rf.name), rf.typ
			if rf.cat != "" && !slices.Contains(cats, rf.cat) {
				cats = append(cats, rf.cat)
			}
		}
		val := v[wf.name]
		if rf == nil || r == nil {
			// A copy does not carry what the reader lacks.
			t.all(wf.typ, val, wi, "", wantGone, "writer_only")
			continue
		}
		a := t.action(rs, cats, inherit)
		t.value(wf.typ, rt, val, wi, ri, rs, a)
	}
}

// value applies action a to value v of writer type w (reader type r).
func (t *treater) value(w, r *mType, v any, wi, ri, rs, a string) {
	if a == "remove" {
		t.all(w, v, wi, ri, wantGone, a)
		return
	}
	if w.kind == "union" {
		if v == nil {
			return
		}
		m := v.(map[string]any)
		for k, inner := range m {
			for _, b := range w.branches {
				if unionKey(b) == k {
					t.value(b, nonNull(r), inner, wi, ri, rs, a)
				}
			}
		}
		return
	}
	switch w.kind {
	case "record":
		inherit := ""
		if rewriting(a) {
			inherit = a
		}
		t.record(w, nonNull(r), v.(map[string]any), wi, ri, rs, inherit)
	case "array":
		items := v.([]any)
		var rItems *mType
		if r != nil {
			rItems = r.items
		}
		if nonNull(w.items).kind != "record" {
			for _, it := range items {
				if _, ok := t.leaf(w.items, it, a); !ok {
					t.all(w, v, wi, ri, wantGone, "remove")
					return
				}
			}
		}
		for i, it := range items {
			t.value(w.items, rItems, it, fmt.Sprintf("%s[%d]", wi, i), fmt.Sprintf("%s[%d]", ri, i), rs+"[]", a)
		}
	case "map":
		m := v.(map[string]any)
		for _, it := range m {
			if _, ok := t.leaf(w.items, it, a); !ok {
				t.all(w, v, wi, ri, wantGone, "remove")
				return
			}
		}
		for k, it := range m {
			inst := wi + "{" + k + "}"
			switch {
			case isEncrypt(a):
				// The keys of an encrypted map are encrypted deterministically.
				t.out = append(t.out, leafExp{wInst: inst + "(key)", input: k, want: wantEncrypt, expect: k, action: a, noLocate: true, str: true, det: true})
			case rewriting(a):
				// The keys of a rewritten map are pseudonymised.
				p, _ := t.leaf(&mType{kind: "string"}, k, "pseudonymise")
				t.out = append(t.out, leafExp{wInst: inst + "(key)", input: k, want: wantTransform, expect: p, action: "pseudonymise", noLocate: true, str: true})
			default:
				t.out = append(t.out, leafExp{wInst: inst + "(key)", input: k, want: wantKeep, action: a, noLocate: true, str: true})
			}
			out, _ := t.leaf(w.items, it, a)
			e := leafExp{wInst: inst, input: it, want: wantTransform, expect: out, action: a, noLocate: true, str: w.items.kind == "string"}
			switch {
			case a == "keep":
				e.want, e.expect = wantKeep, nil
			case isEncrypt(a):
				e.want, e.det = wantEncrypt, a == encDet
				e.inMap, e.mapW, e.mapR, e.mapKey = true, wi, ri, k
			}
			t.out = append(t.out, e)
		}
	default:
		out, ok := t.leaf(w, v, a)
		switch {
		case !ok:
			t.out = append(t.out, leafExp{wInst: wi, rInst: ri, input: v, want: wantGone, action: a, str: w.kind == "string"})
		case a == "keep":
			t.out = append(t.out, leafExp{wInst: wi, rInst: ri, input: v, want: wantKeep, action: a, str: w.kind == "string"})
		case isEncrypt(a):
			t.out = append(t.out, leafExp{wInst: wi, rInst: ri, input: v, want: wantEncrypt, expect: out, action: a, str: w.kind == "string", det: a == encDet})
		default:
			t.out = append(t.out, leafExp{wInst: wi, rInst: ri, input: v, want: wantTransform, expect: out, action: a, str: w.kind == "string"})
		}
	}
}

// all records every leaf below value v with the same expectation.
func (t *treater) all(w *mType, v any, wi, ri string, wt want, a string) {
	switch w.kind {
	case "union":
		if v == nil {
			return
		}
		for k, inner := range v.(map[string]any) {
			for _, b := range w.branches {
				if unionKey(b) == k {
					t.all(b, inner, wi, ri, wt, a)
				}
			}
		}
	case "record":
		m := v.(map[string]any)
		for _, f := range w.fields {
			rj := ""
			if ri != "" {
				rj = ri + "." + f.name // only used for located checks of kept values
			}
			t.all(f.typ, m[f.name], wi+"."+f.name, rj, wt, a)
		}
	case "array":
		for i, it := range v.([]any) {
			t.all(w.items, it, fmt.Sprintf("%s[%d]", wi, i), "", wt, a)
		}
	case "map":
		for k, it := range v.(map[string]any) {
			t.out = append(t.out, leafExp{wInst: wi + "{" + k + "}(key)", input: k, want: wt, action: a, noLocate: true, str: true})
			t.all(w.items, it, wi+"{"+k+"}", "", wt, a)
			t.out[len(t.out)-1].noLocate = true
		}
	default:
		t.out = append(t.out, leafExp{wInst: wi, rInst: ri, input: v, want: wt, action: a, str: w.kind == "string"})
	}
}

// leaf applies a rewriting action to a leaf; ok false: it does not apply
// (the field is removed instead).
func (t *treater) leaf(w *mType, v any, a string) (any, bool) {
	switch a {
	case "keep":
		return v, true
	case "remove":
		return nil, false
	case "pseudonymise":
		s, ok := v.(string)
		if !ok || w.kind != "string" {
			return nil, false
		}
		m := hmac.New(sha256.New, t.key)
		m.Write([]byte(s))
		return hex.EncodeToString(m.Sum(nil)), true
	case "mask":
		s, ok := v.(string)
		if !ok || w.kind != "string" {
			return nil, false
		}
		return modelMask(s), true
	case "truncate_ip":
		s, ok := v.(string)
		if !ok || w.kind != "string" {
			return nil, false
		}
		return modelTruncateIPv4(s)
	case encDet, encRand:
		// Strings and bytes (no logical type) hold a ciphertext, and only
		// under a key; anything else is removed.
		switch v.(type) {
		case string, []byte:
			if t.hasKey && (w.kind == "string" || w.kind == "bytes") {
				return v, true
			}
		}
		return nil, false
	case "generalise_hour", "generalise_day":
		tm, ok := v.(time.Time)
		if !ok || w.kind != "timestamp-millis" {
			return nil, false
		}
		unit := time.Hour
		if a == "generalise_day" {
			unit = 24 * time.Hour
		}
		return tm.UTC().Truncate(unit), true
	}
	return nil, false
}

// modelMask: an e-mail keeps the first character of its local part and its
// domain; a card number (13-19 digits, only digits, spaces, dashes, not
// starting with '+') its last four digits; a phone number (digits and
// "+ -()." with at least 5 digits) its last two; anything else its first
// character, the rest '*'.
func modelMask(s string) string {
	if at := strings.LastIndex(s, "@"); at > 0 && at < len(s)-1 {
		return maskOther(s[:at]) + s[at:]
	}
	digits, shaped := 0, len(s) > 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case strings.ContainsRune("+ -().", c):
		default:
			shaped = false
		}
	}
	if shaped && digits > 0 {
		card := s[0] != '+' && digits >= 13 && digits <= 19 && strings.Trim(s, "0123456789 -") == ""
		keep := 0
		switch {
		case card:
			keep = 4
		case digits >= 5:
			keep = 2
		}
		if keep > 0 {
			var b strings.Builder
			seen := 0
			for _, c := range s {
				if c >= '0' && c <= '9' {
					seen++
					if seen <= digits-keep {
						c = '*'
					}
				}
				b.WriteRune(c)
			}
			return b.String()
		}
	}
	return maskOther(s)
}

func maskOther(s string) string {
	r := []rune(s)
	if len(r) <= 1 {
		return "*"
	}
	return string(r[0]) + strings.Repeat("*", len(r)-1)
}

// modelTruncateIPv4 handles the dotted IPv4 values the test generates: /24.
func modelTruncateIPv4(s string) (any, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return nil, false
	}
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != p {
			return nil, false
		}
	}
	return strings.Join(parts[:3], ".") + ".0", true
}

// mayHaveKey: a subject is given a data key unless it was erased and no
// purpose has a grant, valid now, newer than the erasure (a key made after
// the erasure would not be destroyed by it). A subject never seen has one.
func mayHaveKey(hist []mChange, now int64) bool {
	if !slices.ContainsFunc(hist, func(c mChange) bool { return c.action == "ERASE" }) {
		return true
	}
	for _, c := range hist {
		if c.action != "ERASE" && verdict(hist, c.purpose, now).allowed {
			return true
		}
	}
	return false
}
