package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/proctest"
)

// TestSubcommands runs the built enforcer's offline subcommands as a user
// would: check on a bad policy, check on the dev stack's policy, and explain
// on a sample event and consent.
func TestSubcommands(t *testing.T) {
	bin := proctest.Build(t, "services/enforcer")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	err := os.WriteFile(bad, []byte(`purposes:
  - id: marketing
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchse]
  - purposes: [marketing]
    topic: compliant.other
    on_missing_consent: redact
    treatments:
      - field: items[].skuu
        action: keep
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	root := proctest.RepoRoot(t)
	testdata := filepath.Join("internal", "explain", "testdata")
	cases := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		want     []string
	}{
		{name: "check bad policy", args: []string{"check", bad}, wantCode: 1, want: []string{
			bad + ":6:15: stream compliant.marketing: unknown schema consentgate.events.Purchse",
			bad + ":11:16: stream compliant.other: no schema the stream accepts has the field items[].skuu",
			bad + ": 2 problem(s)",
		}},
		{name: "check dev policy from POLICY_FILE", args: []string{"check"}, env: []string{"POLICY_FILE=" + filepath.Join(root, "deploy", "policy.yaml")},
			wantCode: 0, want: []string{"policy.yaml: ok, version sha256:", "warning: stream compliant.analytics pseudonymises"}},
		{name: "explain sample", wantCode: 0, args: []string{"explain", "--policy", filepath.Join(testdata, "policy.yaml"),
			"--event", filepath.Join(testdata, "events", "purchase.json"), "--consent", filepath.Join(testdata, "consent", "health_excluded.json"),
			"--now", "2026-06-01T12:00:00Z"},
			want: []string{"compliant.marketing (purposes: marketing", "decision:       REDACTED", "items[].health_category  -> remove", "consent change: chg-4"}},
		{name: "check the example policy's signals", args: []string{"check", filepath.Join(root, "pkg", "policy", "testdata", "example.yaml")}, wantCode: 0,
			want: []string{"signals (19 rules, precedence most_restrictive):", "tcf: tcf.purpose.{2,7,9-11}",
				"example.yaml:89:15: warning: signals rule tcf.special_feature.1: no field of a schema in the catalog has a category user.location.precise", "rules that only take consent away (opt-out fields: an objection withdraws, not objecting grants nothing): gpp.usnat.sale_opt_out"}},
		{name: "explain with signals", wantCode: 0, args: []string{"explain", "--policy", filepath.Join(root, "pkg", "policy", "testdata", "example.yaml"),
			"--event", filepath.Join(testdata, "events", "purchase.json"), "--now", "2026-06-01T12:00:00Z", "--jurisdiction", "DE",
			"--tcf", "CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA"},
			want: []string{"consent from signals: tcf (jurisdiction DE;", "personalisation: GRANT, legal basis CONSENT, excluded categories user.location.precise",
				"compliant.personalisation (purposes: personalisation; on_missing_consent: drop)\n  decision:       PASSED"}},
		{name: "explain malformed signal", wantCode: 1, args: []string{"explain", "--policy", filepath.Join(root, "pkg", "policy", "testdata", "example.yaml"),
			"--event", filepath.Join(testdata, "events", "purchase.json"), "--gpp", "DBAB"},
			want: []string{"enforcer explain: signals[0] (gpp): gpp: "}},
		{name: "explain usage error", args: []string{"explain", "--event", "x.json"}, env: []string{"POLICY_FILE="}, wantCode: 2,
			want: []string{"enforcer explain: no policy: set --policy or POLICY_FILE (see --help)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := proctest.Start(t, "enforcer "+tc.args[0], bin, tc.env, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_ = p.Wait(ctx)
			if code := p.ExitCode(); code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			for _, w := range tc.want {
				if !strings.Contains(p.Output(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", p.Output())
			}
		})
	}
}
