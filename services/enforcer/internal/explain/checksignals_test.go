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
			name: "rules that can only take consent away", policy: purposes + `signals:
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
      categories: [user.location.precise]
    - signal: gpp.usnat.targeted_advertising_opt_out
      categories: [user.location.precise]
      purposes: [analytics]
      jurisdictions: [US]
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
`,
			warnings: []string{
				"p.yaml:10:15: warning: signals rule gpc can only take consent away, never grant: it reads an opt-out field and maps only opt-in purposes (marketing, analytics); " +
					"an opt-out withdraws them, not opting out is no consent to them",
				"p.yaml:16:15: warning: signals rule gpp.usnat.sale_opt_out always excludes user.health from grants of marketing: it reads an opt-out field, and not opting out is no consent to an opt-in purpose",
				"p.yaml:21:15: warning: signals rule gpp.usnat.targeted_advertising_opt_out always excludes user.location.precise from grants of analytics (in US, and where the jurisdiction is not known): it reads an opt-out field, and not opting out is no consent to an opt-in purpose",
			},
			summary: "signals (7 rules, precedence most_restrictive):\n" +
				"  sources no rule maps (their signals change no consent): tcf, gpp.usca, gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri\n" +
				"  fields no rule maps, of the sources mapped:\n" +
				"    gpp.usnat: gpp.usnat.sensitive_data_processing.{1-16}, gpp.usnat.known_child_sensitive_data_consents.{1-3}, gpp.usnat.personal_data_consents, gpp.usnat.gpc\n" +
				"    consent_mode: consent_mode.ad_storage, consent_mode.analytics_storage, consent_mode.ad_personalization\n",
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
				"  sources no rule maps (their signals change no consent): tcf, gpp.usnat, gpp.usca, gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri, consent_mode\n",
		},
		{
			name: "the dev stack's example", policy: string(repoFile(t, "pkg/policy/testdata/example.yaml")),
			warnings: []string{
				"p.yaml:40:19: warning: stream compliant.analytics: no field of a schema the stream accepts has a category user.location.precise matches, so the rule never applies",
				"p.yaml:97:15: warning: signals rule gpp.usnat.targeted_advertising_opt_out can only take consent away, never grant: it reads an opt-out field and maps only opt-in purposes (marketing); " +
					"an opt-out withdraws them, not opting out is no consent to them",
			},
			summary: "signals (19 rules, precedence most_restrictive):\n" +
				"  sources no rule maps (their signals change no consent): gpp.usva, gpp.usco, gpp.usut, gpp.usct, gpp.usfl, gpp.usmt, gpp.usor, gpp.ustx, gpp.usde, gpp.usia, gpp.usne, gpp.usnh, gpp.usnj, gpp.ustn, gpp.usmn, gpp.usmd, gpp.usin, gpp.usky, gpp.usri\n" +
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

// The engine does what the warnings say: with no opt-out at all (usnat
// "did not opt out" everywhere), the sale_opt_out rule grants nothing, and the
// category rules on opt-out fields exclude their categories from the grant
// of marketing that Consent Mode makes.
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
	if w := signalWarnings(pol, nil, "p.yaml"); len(w) != 2 {
		t.Fatalf("warnings %v", w)
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
// part) on standard output, warnings on standard error, exit 0.
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
	if !strings.Contains(errs.String(), examplePolicy+":97:15: warning: signals rule gpp.usnat.targeted_advertising_opt_out can only take consent away") ||
		strings.Contains(out.String(), "warning") {
		t.Errorf("stderr:\n%s", errs.String())
	}
}

func TestCompactFields(t *testing.T) {
	t.Parallel()
	got := strings.Join(compactFields([]string{"a.1", "a.2", "a.3", "a.5", "b.x", "a.7", "gpc", "c.10", "c.9"}), " ")
	if want := "a.{1-3,5} b.x a.7 gpc c.{9-10}"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
