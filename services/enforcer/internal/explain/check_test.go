package explain

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoFile reads a file relative to the repository root.
func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const checkBase = `purposes:
  - id: marketing
  - id: analytics
streams:
`

func TestCheck(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	cases := []struct {
		name    string
		policy  string
		haveKey bool
		errors  []string // every error, in order, as printed
		// warnings, in order; nil means none.
		warnings []string
	}{
		{
			name: "unknown schema name", policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase, consentgate.events.Purchse]
`,
			errors: []string{"p.yaml:7:44: stream compliant.marketing: unknown schema consentgate.events.Purchse: the schema catalog has " +
				"consentgate.audit.AuditRecord, consentgate.consent.ConsentChange, consentgate.consent.ConsentSignal, consentgate.consent.RevocationNotice, consentgate.events.EmailEngagement, " +
				"consentgate.events.PageView, consentgate.events.Purchase, consentgate.keys.KeyEvent; did you mean consentgate.events.Purchase?"},
		},
		{
			name: "bad field path, and one the stream's schemas lack", policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - field: items[].skuu
        action: keep
      - action: keep
        field: shipping_address.city
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement]
    treatments:
      - field: items[].sku
        action: keep
`,
			errors: []string{
				"p.yaml:9:16: stream compliant.analytics: no schema the stream accepts has the field items[].skuu, so the rule never applies; did you mean items[].sku?",
				"p.yaml:17:16: stream compliant.marketing: no schema the stream accepts has the field items[].sku, so the rule never applies",
			},
		},
		{
			name: "a field of an older schema version counts", policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    schemas: [consentgate.events.PageView]
    on_missing_consent: redact
    treatments:
      - field: page_title
        action: keep
      - field: geo.city
        action: remove
`,
		},
		{
			name: "policy syntax problems come first, with their positions", policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: pass
    schemas: [consentgate.events.Nope]
`,
			errors: []string{`p.yaml:7:25: bad on_missing_consent "pass": allowed values are drop, redact`},
		},
		{
			name: "pseudonymise without a key is a warning", policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.id
        action: pseudonymise
`,
			warnings: []string{"p.yaml:10:17: warning: stream compliant.analytics pseudonymises fields but no key is set: the enforcer will not start without PSEUDONYMISATION_KEY_FILE (or PSEUDONYMISATION_KEY)"},
		},
		{
			name: "mask without a key is a warning: it pseudonymises map keys", policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.contact.*
        action: mask
`,
			warnings: []string{"p.yaml:10:17: warning: stream compliant.analytics uses mask, which pseudonymises the keys of a map it applies to, but no key is set: the enforcer will not start without PSEUDONYMISATION_KEY_FILE (or PSEUDONYMISATION_KEY)"},
		},
		{
			name: "default_treatment pseudonymise, key set", haveKey: true, policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    default_treatment: pseudonymise
`,
		},
		{
			name: "settings that cannot take effect are warnings", haveKey: true, policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.location.precise
        action: remove
      - category: user.health
        action: remove
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement]
    unannotated_fields: remove
    default_treatment: mask
    treatments:
      - category: user.contact.*
        action: mask
      - field: email
        action: keep
      - field: campaign_id
        action: keep
`,
			warnings: []string{
				"p.yaml:9:19: warning: stream compliant.analytics: no field of a schema the stream accepts has a category user.location.precise matches, so the rule never applies",
				"p.yaml:17:5: warning: stream compliant.marketing: on_missing_consent is drop, so the stream never redacts and default_treatment never applies",
				"p.yaml:19:19: warning: stream compliant.marketing: on_missing_consent is drop, so the stream never redacts and the category rule user.contact.* never applies",
				"p.yaml:21:16: warning: stream compliant.marketing: on_missing_consent is drop, so the stream never redacts and the rule for email never applies (a field rule takes effect on a drop stream only for an unannotated field with unannotated_fields: remove)",
			},
		},
		{
			name: "unannotated_fields: remove with nothing left to remove", policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement]
    unannotated_fields: remove
    treatments:
      - field: event_id
        action: keep
      - field: occurred_at
        action: keep
      - field: campaign_id
        action: keep
      - field: message_id
        action: keep
`,
			warnings: []string{"p.yaml:8:5: warning: stream compliant.marketing: unannotated_fields is remove, but no schema the stream accepts has an unannotated field it would remove"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Check([]byte(tc.policy), "p.yaml", cat, tc.haveKey)
			var errs, warns []string
			for _, e := range res.Errors {
				errs = append(errs, e.Error())
			}
			for _, w := range res.Warnings {
				warns = append(warns, w.Error())
			}
			if strings.Join(errs, "\n") != strings.Join(tc.errors, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(tc.errors, "\n"))
			}
			if strings.Join(warns, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(tc.warnings, "\n"))
			}
			if res.OK() != (len(tc.errors) == 0) || (res.Policy == nil) != strings.Contains(tc.name, "syntax") {
				t.Errorf("OK %v, policy %v", res.OK(), res.Policy != nil)
			}
		})
	}
}

// The dev stack's policy and the policy package's example pass.
func TestCheckShippedPolicies(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	for _, rel := range []string{"deploy/policy.yaml", "pkg/policy/testdata/example.yaml"} {
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			res := Check(repoFile(t, rel), rel, cat, true)
			// A rule for a category that no built-in schema carries (it
			// applies to registry schemas that do), and in the example's
			// signals section the rules for the same category.
			want := []string{rel + ":39:19: warning: stream compliant.analytics: no field of a schema the stream accepts has a category user.location.precise matches, so the rule never applies"}
			if rel == "pkg/policy/testdata/example.yaml" {
				want = exampleWarnings(rel)
			}
			var got []string
			for _, w := range res.Warnings {
				got = append(got, w.Error())
			}
			if !res.OK() || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("errors %v, warnings:\n%s\nwant:\n%s", res.Errors, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			var b bytes.Buffer
			if err := res.WriteSummary(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{rel + ": ok, version sha256:", "compliant.analytics\n    purposes: analytics\n", "on_missing_consent redact"} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, b.String())
				}
			}
			// deploy/policy.yaml has no signals section: nothing about signals.
			if hasSignals := strings.Contains(b.String(), "\nsignals ("); hasSignals != (rel == "pkg/policy/testdata/example.yaml") {
				t.Errorf("signals in the summary: %v:\n%s", hasSignals, b.String())
			}
		})
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	lines := strings.Split("a: x.y\n# x.y.z\nb: [x.y.z, x.y]\nc: x.y", "\n")
	cases := []struct {
		token          string
		from, end      int
		wantL, wantCol int
	}{
		{"x.y", 2, 5, 3, 12}, // not inside x.y.z, not in a comment
		{"x.y.z", 1, 5, 3, 5},
		{"x.y", 4, 5, 4, 4},
		{"q", 2, 5, 2, 1}, // not found: the first line, column 1
	}
	for _, tc := range cases {
		l, c := locate(lines, tc.token, tc.from, tc.end)
		if l != tc.wantL || c != tc.wantCol {
			t.Errorf("locate(%q, %d) = %d:%d, want %d:%d", tc.token, tc.from, l, c, tc.wantL, tc.wantCol)
		}
	}
}
