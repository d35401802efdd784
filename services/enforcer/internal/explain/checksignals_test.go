package explain

import (
	"bytes"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestCheckSignals: the signals findings and summary of check, for small
// policies and the dev stack's example.
func TestCheckSignals(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	const purposes = `purposes:
  - id: marketing
  - id: analytics
  - id: sale
    opt_out: true
streams:
  - purposes: [marketing]
`
	cases := []struct {
		name     string
		policy   string
		warnings []string
		summary  string // the summary from "signals (" on; "" for none
	}{
		{name: "no signals section", policy: purposes},
		{
			name: "rules that can only take consent away, category rules on opt-out fields", policy: purposes + `signals:
  rules:
    - signal: gpc
      purposes: [marketing, analytics]
    - signal: gpc
      purposes: [sale]
    - signal: gpp.uspv1.sale_opt_out
      purposes: [sale, marketing]
    - signal: gpp.usnat.sale_opt_out
      categories: [user.health]
      purposes: [marketing]
    - signal: gpp.usnat.sharing_opt_out
      categories: [user.contact]
    - signal: gpp.usnat.targeted_advertising_opt_out
      categories: [user.financial]
      purposes: [marketing, sale]
      jurisdictions: [US]
    - signal: gpp.usnat.gpc
      categories: [user.device]
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
`,
			// The purpose rules on opt-out fields are information (the
			// summary); the category rules on opt-out fields exclude their
			// categories from every grant they apply to (marketing: the
			// only purpose a rule can grant), save the objection flag
			// gpp.usnat.gpc, which excludes only when set.
			warnings: []string{
				"p.yaml:16:15: warning: signals rule gpp.usnat.sale_opt_out always excludes user.health from grants of marketing: it reads an opt-out field, and not opting out is no consent to a category; " +
					"map categories to consent fields (TCF special features, GPP consent fields)",
				"p.yaml:19:15: warning: signals rule gpp.usnat.sharing_opt_out always excludes user.contact from grants of marketing: it reads an opt-out field, and not opting out is no consent to a category; " +
					"map categories to consent fields (TCF special features, GPP consent fields)",
				"p.yaml:21:15: warning: signals rule gpp.usnat.targeted_advertising_opt_out always excludes user.financial from grants of marketing (in US, and where the jurisdiction is not known): " +
					"it reads an opt-out field, and not opting out is no consent to a category; map categories to consent fields (TCF special features, GPP consent fields)",
			},
			summary: "signals (8 rules, precedence most_restrictive):\n" +
				"  sources no rule maps (their signals change no consent): tcf, gpp.usca, gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri\n" +
				"  rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): gpc, gpp.uspv1.sale_opt_out\n" +
				"  fields no rule maps, of the sources mapped:\n" +
				"    gpp.usnat: gpp.usnat.sensitive_data_processing.{1-16}, gpp.usnat.known_child_sensitive_data_consents.{1-3}, gpp.usnat.personal_data_consents\n" +
				"    consent_mode: consent_mode.ad_storage, consent_mode.analytics_storage, consent_mode.ad_personalization\n",
		},
		{
			name: "category rules that never apply, and categories no schema carries", policy: purposes + `signals:
  rules:
    - signal: gpc
      purposes: [sale]
    - signal: tcf.special_feature.1
      categories: [user.location.precise]
    - signal: gpp.usnat.sensitive_data_processing.3
      categories: [user.health]
      purposes: [sale, analytics]
    - signal: tcf.special_feature.2
      categories: [user.device, user.demographic.age]
      purposes: [marketing]
`,
			warnings: []string{
				"p.yaml:12:15: warning: signals rule tcf.special_feature.1 never applies: a category rule only narrows a GRANT the signals make, and no rule of the signals section maps a purpose from an opt-in field; " +
					"the exclusion of user.location.precise can never be made",
				"p.yaml:12:15: warning: signals rule tcf.special_feature.1: no field of a schema in the catalog has a category user.location.precise matches, so the exclusion removes nothing and the customer's refusal maps to nothing",
				"p.yaml:14:15: warning: signals rule gpp.usnat.sensitive_data_processing.3 never applies: a category rule only narrows a GRANT the signals make, and no rule of the signals section maps a purpose from an opt-in field; " +
					"the exclusion of user.health can never be made",
				"p.yaml:17:15: warning: signals rule tcf.special_feature.2 never applies: a category rule only narrows a GRANT the signals make, and no rule of the signals section maps a purpose from an opt-in field; " +
					"the exclusion of user.device, user.demographic.age can never be made",
				"p.yaml:17:15: warning: signals rule tcf.special_feature.2: no field of a schema in the catalog has a category user.demographic.age matches, so the exclusion removes nothing and the customer's refusal maps to nothing",
			},
			summary: "signals (4 rules, precedence most_restrictive):\n" +
				"  sources no rule maps (their signals change no consent): gpp.usca, gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri, gpp.uspv1, consent_mode\n" +
				"  rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): gpc\n" +
				"  fields no rule maps, of the sources mapped:\n" +
				"    tcf: tcf.purpose.{1-11}, tcf.publisher.purpose.{1-11}, tcf.publisher.custom_purpose.{1-63}\n" +
				"    gpp.usnat: gpp.usnat.sale_opt_out, gpp.usnat.sharing_opt_out, gpp.usnat.targeted_advertising_opt_out, gpp.usnat.sensitive_data_processing.{1-2,4-16}, " +
				"gpp.usnat.known_child_sensitive_data_consents.{1-3}, gpp.usnat.personal_data_consents, gpp.usnat.gpc\n",
		},
		{
			name: "a category rule for purposes no rule that can grant maps", policy: purposes + `signals:
  rules:
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
    - signal: gpc
      purposes: [analytics]
    - signal: consent_mode.ad_personalization
      categories: [user.contact]
      purposes: [analytics, sale]
    - signal: consent_mode.ad_storage
      categories: [user.device]
      purposes: [analytics, marketing]
`,
			warnings: []string{
				"p.yaml:14:15: warning: signals rule consent_mode.ad_personalization never applies: a category rule only narrows a GRANT the signals make, and no rule that can grant (one on an opt-in field) maps analytics, sale; " +
					"the exclusion of user.contact can never be made",
			},
			summary: "signals (4 rules, precedence most_restrictive):\n" +
				"  sources no rule maps (their signals change no consent): tcf, gpp.usnat, gpp.usca, gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri, gpp.uspv1\n" +
				"  rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): gpc\n" +
				"  fields no rule maps, of the sources mapped:\n" +
				"    consent_mode: consent_mode.analytics_storage\n",
		},
		{
			name: "ordered precedence and a vendor id, every field of the mapped sources mapped", policy: purposes + `signals:
  precedence: ordered
  order: [gpc, gpp.uspv1]
  tcf:
    vendor_id: 755
  rules:
    - signal: gpc
      purposes: [sale]
    - signal: gpp.uspv1.sale_opt_out
      purposes: [sale]
`,
			summary: "signals (2 rules, precedence ordered: gpc > gpp.uspv1, TCF vendor 755):\n" +
				"  sources no rule maps (their signals change no consent): tcf, gpp.usnat, gpp.usca, gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri, consent_mode\n" +
				"  rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): gpc, gpp.uspv1.sale_opt_out\n",
		},
		{
			name: "the dev stack's example", policy: string(repoFile(t, "pkg/policy/testdata/example.yaml")),
			warnings: exampleWarnings("p.yaml"),
			summary: "signals (19 rules, precedence most_restrictive):\n" +
				"  sources no rule maps (their signals change no consent): gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri\n" +
				"  rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): gpp.usnat.sale_opt_out, gpp.usnat.sharing_opt_out, " +
				"gpp.usnat.targeted_advertising_opt_out, gpp.usca.sale_opt_out, gpp.usca.sharing_opt_out, gpp.uspv1.sale_opt_out, gpc\n" +
				"  fields no rule maps, of the sources mapped:\n" +
				"    tcf: tcf.purpose.{2,7,9-11}, tcf.special_feature.2, tcf.publisher.purpose.{1-11}, tcf.publisher.custom_purpose.{1-63}\n" +
				"    gpp.usnat: gpp.usnat.sensitive_data_processing.{1-2,4-7,9-16}, gpp.usnat.known_child_sensitive_data_consents.{1-3}, gpp.usnat.personal_data_consents, gpp.usnat.gpc\n" +
				"    gpp.usca: gpp.usca.sensitive_data_processing.{1-9}, gpp.usca.known_child_sensitive_data_consents.{1-2}, gpp.usca.personal_data_consents, gpp.usca.gpc\n" +
				"    consent_mode: consent_mode.ad_storage\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Check([]byte(tc.policy), "p.yaml", cat, true)
			if !res.OK() {
				t.Fatalf("errors %v", res.Errors)
			}
			var warns []string
			for _, w := range res.Warnings {
				warns = append(warns, w.Error())
			}
			if strings.Join(warns, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(tc.warnings, "\n"))
			}
			var b bytes.Buffer
			if err := res.WriteSummary(&b); err != nil {
				t.Fatal(err)
			}
			got := ""
			if i := strings.Index(b.String(), "\nsignals ("); i >= 0 {
				got = b.String()[i+1:]
			}
			if got != tc.summary {
				t.Errorf("summary from signals on:\n%s\nwant:\n%s", got, tc.summary)
			}
		})
	}
}

// exampleWarnings are check's warnings for pkg/policy/testdata/example.yaml
// named source: the stream rule and the two signals rules for
// user.location.precise, a category no built-in schema carries (they apply
// to registry schemas that do).
func exampleWarnings(source string) []string {
	return []string{
		source + ":40:19: warning: stream compliant.analytics: no field of a schema the stream accepts has a category user.location.precise matches, so the rule never applies",
		source + ":89:15: warning: signals rule tcf.special_feature.1: no field of a schema in the catalog has a category user.location.precise matches, " +
			"so the exclusion removes nothing and the customer's refusal maps to nothing",
		source + ":102:15: warning: signals rule gpp.usnat.sensitive_data_processing.8: no field of a schema in the catalog has a category user.location.precise matches, " +
			"so the exclusion removes nothing and the customer's refusal maps to nothing",
	}
}

// The engine does what check says: with no opt-out at all (usnat "did not
// opt out" everywhere), the sale_opt_out rule grants nothing (the summary
// lists it as a rule that only takes consent away), and the category rule
// on an opt-out field excludes its category from the grant of marketing
// that Consent Mode makes (the warning).
func TestCheckSignalsWarningsHold(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse([]byte(`purposes:
  - id: marketing
  - id: analytics
streams:
  - purposes: [marketing]
signals:
  rules:
    - signal: gpp.usnat.sale_opt_out
      purposes: [marketing, analytics]
    - signal: gpp.usnat.sharing_opt_out
      categories: [user.health]
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if w := signalWarnings(pol, nil, "p.yaml"); len(w) != 1 || !strings.Contains(w[0].Problem, "gpp.usnat.sharing_opt_out always excludes user.health from grants of marketing") {
		t.Fatalf("warnings %v", w)
	}
	if got := takeAwayRules(pol); strings.Join(got, ",") != "gpp.usnat.sale_opt_out" {
		t.Fatalf("rules that only take away %v", got)
	}
	sub := signals.Submission{SubjectID: "c-1", CapturedAt: goldenNow, Jurisdiction: "US", Signals: []signals.Signal{
		{Type: signals.TypeGPP, Value: gppNoOptOut},
		{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "granted"}}}}
	changes, err := signals.Changes(pol, sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Purpose != "marketing" || changes[0].Action != consent.ActionGrant ||
		strings.Join(changes[0].ExcludedCategories, ",") != "user.health" || changes[0].Source != "signal:consent_mode" {
		t.Errorf("changes %+v", changes)
	}
}

// RunCheck keeps its output and exit codes: the summary (with the signals
// part, its information included) on standard output, warnings on standard
// error, exit 0.
func TestRunCheckSignals(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	code := RunCheck([]string{examplePolicy}, func(string) string { return "" }, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errs})
	if code != ExitOK {
		t.Fatalf("exit code %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), "\nsignals (19 rules, precedence most_restrictive):\n  sources no rule maps") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if !strings.Contains(errs.String(), examplePolicy+":89:15: warning: signals rule tcf.special_feature.1: no field of a schema in the catalog has a category user.location.precise") ||
		strings.Contains(out.String(), "warning") || strings.Contains(errs.String(), "only take consent away") {
		t.Errorf("stderr:\n%s", errs.String())
	}
	// The rules on opt-out fields are one line of information, not a
	// warning each.
	if !strings.Contains(out.String(), "\n  rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): gpp.usnat.sale_opt_out, ") {
		t.Errorf("stdout:\n%s", out.String())
	}
}

func TestCompactFields(t *testing.T) {
	t.Parallel()
	got := strings.Join(compactFields([]string{"a.1", "a.2", "a.3", "a.5", "b.x", "a.7", "gpc", "c.10", "c.9"}), " ")
	if want := "a.{1-3,5} b.x a.7 gpc c.{9-10}"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
