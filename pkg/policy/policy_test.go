package policy

import (
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const src = "policy.yaml"

// minimal is a valid policy that tests extend.
const minimal = `purposes:
  - id: marketing
streams:
  - purposes: [marketing]
`

func TestParseBad(t *testing.T) {
	t.Parallel()
	// want: one "<line>:<col>: <part of the problem>" per expected problem, in file order.
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty file", "", []string{"1:1: empty policy file"}},
		{"only comments", "# nothing here\n\n", []string{"1:1: empty policy file"}},
		{"syntax error unclosed flow list", "purposes:\n  - id: a\n    legal_bases: [CONSENT\nstreams: []\n",
			[]string{"3:1: yaml syntax error: did not find expected ',' or ']'"}},
		{"syntax error mapping in scalar", "purposes:\n  - id: a\n streams: x\n", []string{"3:1: yaml syntax error: did not find expected key"}},
		{"syntax error missing dash", "purposes:\n  - id: a\n  id: b\n", []string{"2:1: yaml syntax error: did not find expected '-' indicator"}},
		{"syntax error tab", "purposes:\n\t- id: a\n", []string{"2:1: yaml syntax error: found character that cannot start any token"}},
		{"syntax error unterminated quote", "purposes:\n  - id: \"a\nstreams: []\n", []string{"2:1: yaml syntax error: found unexpected end of stream"}},
		{"control character", "purposes:\n  - id: a\x01\n", []string{"2:10: yaml syntax error: control characters are not allowed"}},
		{"invalid utf8", "purposes:\n  - id: \xff\n", []string{"2:9: yaml syntax error: invalid leading UTF-8 octet"}},
		{"unknown alias", "purposes:\n  - id: *x\n", []string{"2:9: yaml syntax error: unknown anchor 'x' referenced"}},
		{"alias used", "purposes:\n  - &p\n    id: a\n  - *p\nstreams:\n  - purposes: [a]\n", []string{"4:5: YAML aliases (*name) are not supported"}},
		{"two documents", minimal + "---\npurposes: []\n", []string{"6:1: a second YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{"1:1: the policy must be a mapping with keys controller, purposes, streams"}},
		{"unknown top key", minimal + "purpose: []\n", []string{`5:1: unknown key "purpose" in the policy; did you mean purposes? (allowed: controller, purposes, streams, signals)`}},
		{"duplicate top key", minimal + "streams:\n  - purposes: [marketing]\n", []string{"5:1: duplicate key streams in the policy (first at line 3)"}},
		{"no purposes key", "streams:\n  - purposes: [a]\n", []string{"1:1: no purposes", `2:16: stream names unknown purpose "a"`}},
		{"empty purposes", "purposes: []\nstreams:\n  - purposes: [a]\n", []string{"1:1: no purposes", `3:16: stream names unknown purpose "a"`}},
		{"null purposes", "purposes:\nstreams:\n  - purposes: [a]\n", []string{"1:1: no purposes", `3:16: stream names unknown purpose "a"`}},
		{"no streams", "purposes:\n  - id: a\n", []string{"1:1: no streams"}},
		{"empty streams", "purposes:\n  - id: a\nstreams: []\n", []string{"3:1: no streams"}},
		{"purposes not a list", "purposes: marketing\nstreams:\n  - purposes: [marketing]\n",
			[]string{"1:11: purposes must be a list", `3:16: stream names unknown purpose "marketing"`}},
		{"purpose not a mapping", "purposes:\n  - marketing\nstreams:\n  - purposes: [marketing]\n",
			[]string{"2:5: purpose must be a mapping with keys id, description, legal_bases, opt_out", `4:16: stream names unknown purpose "marketing"`}},
		{"purpose without id", "purposes:\n  - description: x\n  - id: a\nstreams:\n  - purposes: [a]\n", []string{"2:5: purpose has no id"}},
		{"empty purpose id", "purposes:\n  - id:\n  - id: a\nstreams:\n  - purposes: [a]\n", []string{"2:8: purpose id is empty"}},
		{"duplicate purpose id", "purposes:\n  - id: a\n  - id: b\n  - id: a\nstreams:\n  - purposes: [a, b]\n",
			[]string{`4:9: duplicate purpose id "a" (first at line 2)`}},
		{"bad purpose id", "purposes:\n  - id: Marketing\n  - id: 1st\n  - id: e-mail\nstreams:\n  - purposes: [Marketing]\n", []string{
			`2:9: bad purpose id "Marketing": it must match ^[a-z][a-z0-9_]*$`,
			`3:9: bad purpose id "1st"`,
			`4:9: bad purpose id "e-mail"`,
		}},
		{"unknown purpose key", "purposes:\n  - id: a\n    optout: true\nstreams:\n  - purposes: [a]\n",
			[]string{`3:5: unknown key "optout" in purpose; did you mean opt_out?`}},
		{"unknown legal basis", "purposes:\n  - id: a\n    legal_bases: [CONSENT, consent, CONTRACTS]\nstreams:\n  - purposes: [a]\n", []string{
			`3:28: unknown legal basis "consent": allowed values are CONSENT, LEGITIMATE_INTEREST, CONTRACT`,
			`3:37: unknown legal basis "CONTRACTS"`,
		}},
		{"empty legal bases", "purposes:\n  - id: a\n    legal_bases: []\nstreams:\n  - purposes: [a]\n", []string{"3:18: legal_bases is empty"}},
		{"duplicate legal basis", "purposes:\n  - id: a\n    legal_bases:\n      - CONSENT\n      - CONSENT\nstreams:\n  - purposes: [a]\n",
			[]string{`5:9: duplicate "CONSENT" in legal_bases (first at line 4)`}},
		{"legal bases not a list", "purposes:\n  - id: a\n    legal_bases: CONSENT\nstreams:\n  - purposes: [a]\n", []string{"3:18: legal_bases must be a list"}},
		{"bad opt_out", "purposes:\n  - id: a\n    opt_out: yes\nstreams:\n  - purposes: [a]\n", []string{"3:14: opt_out must be true or false"}},
		{"stream not a mapping", minimal + "  - marketing\n", []string{"5:5: stream must be a mapping"}},
		{"stream without purposes", minimal + "  - topic: compliant.x\n", []string{"5:5: stream has no purposes"}},
		{"stream with empty purposes", minimal + "  - topic: compliant.x\n    purposes: []\n", []string{"6:15: stream has no purposes"}},
		{"stream with unknown purpose", minimal + "  - topic: compliant.x\n    purposes: [marketing, analytics]\n",
			[]string{`6:27: stream names unknown purpose "analytics": declare it under purposes`}},
		{"stream with duplicate purpose", minimal + "  - topic: compliant.x\n    purposes: [marketing, marketing]\n",
			[]string{`6:27: duplicate "marketing" in stream purposes (first at line 6)`}},
		{"duplicate explicit topic", "purposes:\n  - id: a\nstreams:\n  - topic: t\n    purposes: [a]\n  - topic: t\n    purposes: [a]\n",
			[]string{`6:12: duplicate topic "t" (first at line 4)`}},
		{"duplicate default topic", minimal + "  - topic: compliant.marketing\n    purposes: [marketing]\n",
			[]string{`5:12: duplicate topic "compliant.marketing" (first at line 4)`}},
		{"duplicate topic both default", minimal + "  - purposes: [marketing]\n", []string{`5:5: duplicate topic "compliant.marketing" (first at line 4)`}},
		{"bad topic", minimal + "  - topic: compliant/marketing\n    purposes: [marketing]\n", []string{`5:12: bad topic "compliant/marketing"`}},
		{"bad schema name", minimal + "  - topic: x\n    purposes: [marketing]\n    schemas: [Purchase, consentgate.events.Page-View]\n",
			[]string{`7:25: bad schema name "consentgate.events.Page-View"`}},
		{"typo on_missing_consent", minimal + "    on_mising_consent: drop\n",
			[]string{`5:5: unknown key "on_mising_consent" in stream; did you mean on_missing_consent? (allowed: topic, description, purposes, recipients, schemas, on_missing_consent, unannotated_fields, excluded_categories, treatments, default_treatment, google_consent_mode)`}},
		{"bad on_missing_consent", minimal + "    on_missing_consent: pass\n",
			[]string{`5:25: bad on_missing_consent "pass": allowed values are drop, redact`}},
		{"empty on_missing_consent", minimal + "    on_missing_consent:\n", []string{"5:24: on_missing_consent is empty"}},
		{"bad unannotated_fields", minimal + "    unannotated_fields: drop\n",
			[]string{`5:25: bad unannotated_fields "drop": allowed values are keep, remove`}},
		{"bad excluded_categories", minimal + "    excluded_categories: keep\n",
			[]string{`5:26: bad excluded_categories "keep": allowed values are remove, drop`}},
		{"bad default_treatment", minimal + "    default_treatment: hash\n",
			[]string{`5:24: bad default_treatment "hash": allowed values are remove, pseudonymise, mask, truncate_ip, generalise_hour, generalise_day, keep`}},
		{"treatments not a list", minimal + "    treatments: remove\n", []string{"5:17: treatments must be a list"}},
		{"treatment bad action", minimal + "    treatments:\n      - category: user.id\n        action: hash\n",
			[]string{`7:17: bad action "hash": allowed values are remove, pseudonymise, mask, truncate_ip, generalise_hour, generalise_day, keep`}},
		{"treatment without action", minimal + "    treatments:\n      - category: user.id\n", []string{"6:9: treatment has no action"}},
		{"treatment with both", minimal + "    treatments:\n      - category: user.id\n        field: user_id\n        action: keep\n",
			[]string{"6:9: treatment has both category and field"}},
		{"treatment with neither", minimal + "    treatments:\n      - action: keep\n", []string{"6:9: treatment has neither category nor field"}},
		{"treatment unknown key", minimal + "    treatments:\n      - categroy: user.id\n        action: keep\n", []string{
			`6:9: unknown key "categroy" in treatment; did you mean category?`,
			"6:9: treatment has neither category nor field",
		}},
		{"unknown category", minimal + "    treatments:\n      - category: user.contact.emial\n        action: mask\n",
			[]string{`6:19: unknown data category pattern "user.contact.emial": it matches none of the known categories (user.id, `}},
		{"unknown category prefix", minimal + "    treatments:\n      - category: user.contct.*\n        action: mask\n",
			[]string{`6:19: unknown data category pattern "user.contct.*"`}},
		{"wildcard below a leaf", minimal + "    treatments:\n      - category: user.health.*\n        action: mask\n",
			[]string{`6:19: unknown data category pattern "user.health.*"`}},
		{"bad pattern syntax", minimal + "    treatments:\n      - category: user.*.email\n        action: mask\n",
			[]string{`6:19: unknown data category pattern "user.*.email"`}},
		{"unreachable category rule", minimal + "    treatments:\n      - category: user.contact.*\n        action: mask\n      - category: user.contact.email\n        action: keep\n",
			[]string{`8:19: treatment for category "user.contact.email" never applies: the rule at line 6 (category "user.contact.*") matches first`}},
		{"rule after star", minimal + "    treatments:\n      - category: \"*\"\n        action: remove\n      - category: user.*\n        action: keep\n",
			[]string{`8:19: treatment for category "user.*" never applies: the rule at line 6 (category "*") matches first`}},
		{"duplicate field rule", minimal + "    treatments:\n      - field: items[].sku\n        action: keep\n      - field: items[].sku\n        action: remove\n",
			[]string{`8:16: duplicate treatment for field "items[].sku" (first at line 6)`}},
		{"bad field path", minimal + "    treatments:\n      - field: items[0].sku\n        action: keep\n",
			[]string{`6:16: bad field path "items[0].sku"`}},
		{"many problems at once", `purposes:
  - id: marketing
  - id: marketing
    legal_bases: [CONSENT, OPT_IN]
streams:
  - topic: compliant.marketing
    purposes: [marketing, ads]
    on_missing_consent: redcat
    treatments:
      - category: user.contact.*
        field: email
        action: pseudonymise
      - category: user.bogus
        action: keep
    default_treatment: nothing
`, []string{
			`3:9: duplicate purpose id "marketing" (first at line 2)`,
			`4:28: unknown legal basis "OPT_IN"`,
			`7:27: stream names unknown purpose "ads"`,
			`8:25: bad on_missing_consent "redcat"`,
			`10:9: treatment has both category and field`,
			`13:19: unknown data category pattern "user.bogus"`,
			`15:24: bad default_treatment "nothing"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pol, err := Parse([]byte(tt.in), src)
			if err == nil {
				t.Fatalf("Parse succeeded, want problems %q", tt.want)
			}
			if pol != nil {
				t.Errorf("Parse returned a policy with its error")
			}
			probs := Problems(err)
			var got []string
			for _, p := range probs {
				got = append(got, p.Error())
			}
			if len(probs) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\ngot:\n%s\nwant:\n%s", len(probs), len(tt.want), strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], src+":"+w) {
					t.Errorf("problem %d:\ngot  %s\nwant %s:%s...", i, got[i], src, w)
				}
			}
			if !strings.HasPrefix(err.Error(), src+":") {
				t.Errorf("error %q does not start with the source name", err)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, p *Policy)
	}{
		{"defaults", minimal, func(t *testing.T, p *Policy) {
			want := &Policy{
				Purposes: []Purpose{{ID: "marketing", LegalBases: []string{"CONSENT"}, Line: 2}},
				Streams: []Stream{{
					Topic: "compliant.marketing", Purposes: []string{"marketing"}, OnMissing: OnMissingDrop,
					Unannotated: UnannotatedKeep, Excluded: ExcludedRemove, DefaultTreatment: ActionRemove, Line: 4,
				}},
			}
			want.Version, want.purposes, want.streams = p.Version, p.purposes, p.streams
			if !reflect.DeepEqual(p, want) {
				t.Errorf("got %+v\nwant %+v", p, want)
			}
		}},
		{"all fields", `purposes:
  - id: sale
    description: "Sale: CCPA"
    legal_bases: [CONSENT, CONTRACT]
    opt_out: true
streams:
  - topic: partners.sale
    purposes: [sale]
    schemas: [a.B, C]
    on_missing_consent: redact
    unannotated_fields: remove
    excluded_categories: drop
    treatments:
      - category: user.contact.*
        action: pseudonymise
      - field: items[].sku
        action: keep
    default_treatment: mask
`, func(t *testing.T, p *Policy) {
			wantP := Purpose{ID: "sale", Description: "Sale: CCPA", LegalBases: []string{"CONSENT", "CONTRACT"}, OptOut: true, Line: 2}
			if got, _ := p.Purpose("sale"); !reflect.DeepEqual(got, wantP) {
				t.Errorf("purpose = %+v, want %+v", got, wantP)
			}
			wantS := Stream{
				Topic: "partners.sale", Purposes: []string{"sale"}, Schemas: []string{"a.B", "C"},
				OnMissing: OnMissingRedact, Unannotated: UnannotatedRemove, Excluded: ExcludedDrop,
				Treatments: []Treatment{
					{Category: "user.contact.*", Action: ActionPseudonymise, Line: 14},
					{Field: "items[].sku", Action: ActionKeep, Line: 16},
				},
				DefaultTreatment: ActionMask, Line: 7,
			}
			if got, _ := p.Stream("partners.sale"); !reflect.DeepEqual(got, wantS) {
				t.Errorf("stream = %+v\nwant %+v", got, wantS)
			}
		}},
		{"null optional values", "purposes:\n  - id: a\n    description:\nstreams:\n  - purposes: [a]\n    schemas:\n    treatments: []\n", func(t *testing.T, p *Policy) {
			s := p.Streams[0]
			if len(s.Schemas) != 0 || len(s.Treatments) != 0 || p.Purposes[0].Description != "" {
				t.Errorf("stream = %+v", s)
			}
		}},
		{"default topic from first purpose", "purposes:\n  - id: a\n  - id: b\nstreams:\n  - purposes: [b, a]\n", func(t *testing.T, p *Policy) {
			if got := p.Streams[0].Topic; got != "compliant.b" {
				t.Errorf("topic = %q, want compliant.b", got)
			}
		}},
		{"streams before purposes", "streams:\n  - purposes: [a]\npurposes:\n  - id: a\n", func(t *testing.T, p *Policy) {
			if len(p.Streams) != 1 || len(p.Purposes) != 1 {
				t.Errorf("policy = %+v", p)
			}
		}},
		{"flow style and crlf", "{purposes: [{id: a}], streams: [{purposes: [a], topic: t}]}\r\n", func(t *testing.T, p *Policy) {
			if _, ok := p.Stream("t"); !ok {
				t.Errorf("stream t missing: %+v", p)
			}
		}},
		{"anchors without aliases", "purposes:\n  - &m\n    id: a\nstreams:\n  - purposes: [a]\n", func(t *testing.T, p *Policy) {}},
		{"unused purpose", "purposes:\n  - id: a\n  - id: b\nstreams:\n  - purposes: [a]\n", func(t *testing.T, p *Policy) {
			if _, ok := p.Purpose("b"); !ok {
				t.Error("purpose b missing")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse([]byte(tt.in), src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, p)
		})
	}
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	p, err := Load(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "example.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("parsed example differs from %s (run go test -update if intended):\n%s", golden, got)
	}
	// The dev stack relies on these streams.
	for _, topic := range []string{"compliant.marketing", "compliant.analytics", "compliant.personalisation"} {
		if _, ok := p.Stream(topic); !ok {
			t.Errorf("example has no stream %s", topic)
		}
	}
}

func TestReadmeExample(t *testing.T) {
	t.Parallel()
	// The README's commented example must parse: it is what people copy.
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "```yaml\n", "```\n"
	text := string(data)
	i := strings.Index(text, start)
	if i < 0 {
		t.Fatal("README.md has no yaml example")
	}
	text = text[i+len(start):]
	j := strings.Index(text, end)
	if j < 0 {
		t.Fatal("README.md yaml example is not closed")
	}
	if _, err := Parse([]byte(text[:j]), "README.md"); err != nil {
		t.Errorf("README example: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load error = %v, want fs.ErrNotExist", err)
	}
	if len(Problems(err)) != 0 {
		t.Errorf("a read error should not be a file problem: %v", err)
	}
}

func TestErrorsAs(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(minimal+"    on_missing_consent: maybe\n"), src)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if perr.Source != src || perr.Line != 5 || perr.Column != 25 {
		t.Errorf("error at %s:%d:%d, want %s:5:25", perr.Source, perr.Line, perr.Column, src)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	parse := func(s string) string {
		t.Helper()
		p, err := Parse([]byte(s), src)
		if err != nil {
			t.Fatal(err)
		}
		return p.Version
	}
	v1, v2 := parse(minimal), parse(minimal)
	if v1 != v2 {
		t.Errorf("same content, versions %s and %s", v1, v2)
	}
	if !strings.HasPrefix(v1, "sha256:") || len(v1) != len("sha256:")+16 {
		t.Errorf("version %q is not sha256:<16 hex>", v1)
	}
	if v3 := parse(minimal + "# a comment changes the version too\n"); v3 == v1 {
		t.Errorf("different content, same version %s", v1)
	}
	if v4 := parse(strings.Replace(minimal, "marketing", "ads", 2)); v4 == v1 {
		t.Errorf("different content, same version %s", v1)
	}
}

func TestMatchCategory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, category string
		want              bool
	}{
		{"user.contact.email", "user.contact.email", true},
		{"user.contact.email", "user.contact.phone", false},
		{"user.contact.email", "user.contact.email.work", true},
		{"user.contact.address", "user.contact.address.street", true},
		{"user.contact.address", "user.contact.addressbook", false},
		{"user.contact.*", "user.contact.email", true},
		{"user.contact.*", "user.contact.email.work", true},
		{"user.contact.*", "user.contact", false},
		{"user.contact.*", "user.contactx.email", false},
		{"user.contact.*", "user.device.id", false},
		{"user.*", "user.health", true},
		{"*", "user.id", true},
		{"*", "anything", true},
		{"*", "", false},
		{"", "user.id", false},
		{"", "", false},
		{"user.health", "user.health", true},
		{"user", "user.health", true},
		{"user.contact*", "user.contact.email", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.category, func(t *testing.T) {
			t.Parallel()
			if got := MatchCategory(tt.pattern, tt.category); got != tt.want {
				t.Errorf("MatchCategory(%q, %q) = %v, want %v", tt.pattern, tt.category, got, tt.want)
			}
		})
	}
}

func TestKnownCategories(t *testing.T) {
	t.Parallel()
	got := KnownCategories()
	if len(got) != len(Categories) || !reflect.DeepEqual(got, Categories) {
		t.Fatalf("KnownCategories() = %v", got)
	}
	got[0] = "changed"
	if Categories[0] == "changed" {
		t.Error("KnownCategories returned the shared slice")
	}
	for _, c := range got[1:] {
		if !patternSyntax.MatchString(c) || !knownPattern(c) {
			t.Errorf("category %q is not a valid exact pattern", c)
		}
	}
}

func TestTreatmentFor(t *testing.T) {
	t.Parallel()
	s := Stream{
		Unannotated: UnannotatedKeep,
		Treatments: []Treatment{
			{Field: "items[].sku", Action: ActionKeep},
			{Category: "user.contact.*", Action: ActionPseudonymise},
			{Field: "email_backup", Action: ActionMask},
			{Category: "user.device.ip_address", Action: ActionTruncateIP},
			{Field: "session_id", Action: ActionRemove},
		},
		DefaultTreatment: ActionGeneraliseDay,
	}
	removeUnannotated := s
	removeUnannotated.Unannotated = UnannotatedRemove
	tests := []struct {
		name            string
		s               Stream
		field, category string
		want            Action
	}{
		{"field rule", s, "items[].sku", "user.behavior.purchase", ActionKeep},
		{"category prefix rule", s, "email", "user.contact.email", ActionPseudonymise},
		{"first match wins", s, "email_backup", "user.contact.email", ActionPseudonymise},
		{"field rule on other category", s, "email_backup", "user.health", ActionMask},
		{"exact category rule", s, "ip", "user.device.ip_address", ActionTruncateIP},
		{"default for annotated", s, "age", "user.demographic.age", ActionGeneraliseDay},
		{"unannotated keep", s, "event_id", "", ActionKeep},
		{"unannotated remove", removeUnannotated, "event_id", "", ActionRemove},
		{"field rule on unannotated", s, "session_id", "", ActionRemove},
		{"category rule never matches unannotated", Stream{Treatments: []Treatment{{Category: "*", Action: ActionKeep}}, Unannotated: UnannotatedRemove}, "x", "", ActionRemove},
		{"zero stream removes annotated", Stream{}, "email", "user.contact.email", ActionRemove},
		{"zero stream removes unannotated", Stream{}, "event_id", "", ActionRemove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.s.TreatmentFor(tt.field, tt.category); got != tt.want {
				t.Errorf("TreatmentFor(%q, %q) = %q, want %q", tt.field, tt.category, got, tt.want)
			}
		})
	}
}

func TestAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		schemas []string
		schema  string
		want    bool
	}{
		{"no list accepts all", nil, "consentgate.events.PageView", true},
		{"listed", []string{"a.B", "a.C"}, "a.C", true},
		{"not listed", []string{"a.B"}, "a.C", false},
		{"short name is not the full name", []string{"a.B"}, "B", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := (Stream{Schemas: tt.schemas}).Accepts(tt.schema); got != tt.want {
				t.Errorf("Accepts(%q) = %v, want %v", tt.schema, got, tt.want)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(minimal), src)
	if err != nil {
		t.Fatal(err)
	}
	if pu, ok := p.Purpose("marketing"); !ok || !pu.Allows(LegalBasisConsent) || pu.Allows(LegalBasisContract) {
		t.Errorf("Purpose(marketing) = %+v, %v", pu, ok)
	}
	if _, ok := p.Purpose("analytics"); ok {
		t.Error("unknown purpose found")
	}
	if _, ok := p.Stream("compliant.analytics"); ok {
		t.Error("unknown stream found")
	}
	var nilPolicy *Policy
	if _, ok := nilPolicy.Purpose("marketing"); ok {
		t.Error("nil policy has a purpose")
	}
	if _, ok := (&Policy{}).Stream("compliant.marketing"); ok {
		t.Error("zero policy has a stream")
	}
}
