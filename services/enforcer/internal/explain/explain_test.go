package explain

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenNow is the decision time of every golden case.
var goldenNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// explainCase runs Explain on testdata files.
func explainCase(t *testing.T, eventFile, consentFile string, show bool, now time.Time, key []byte) *Explanation {
	t.Helper()
	pol, err := policy.Parse(readTestdata(t, "policy.yaml"), "testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeObject(readTestdata(t, eventFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseConsent(readTestdata(t, consentFile))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Explain(context.Background(), Input{
		Policy: pol, Source: "testdata/policy.yaml", Catalog: cat, Event: ev, State: st,
		Now: now, ShowValues: show, Key: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestExplainGolden(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, event, consent string
		show, json           bool
		// must is checked in the text output besides the golden file, so
		// that a careless -update cannot bless a wrong decision.
		must []string
	}{
		{name: "passed", event: "events/email.json", consent: "consent/marketing_granted.json",
			must: []string{"compliant.marketing (", "decision:       PASSED", "reason:         granted: the customer granted marketing", "consent change: chg-1"}},
		{name: "dropped_never_asked", event: "events/email.json", consent: "consent/analytics_denied.json",
			must: []string{"decision:       DROPPED", "never_asked: the customer was never asked for marketing; marketing is opt-in", "denied: the customer denied analytics", "consent change: chg-2"}},
		{name: "redacted", event: "events/purchase.json", consent: "consent/unknown.json", show: true,
			must: []string{"decision:       REDACTED", "unknown_subject", "subject_id  ", "-> pseudonymise", "ip_address  ", "-> truncate_ip", "email  ", "-> mask", "shipping_address  ", "2001:db8:abcd::", "j*******@example.com"}},
		{name: "redacted_json", event: "events/purchase.json", consent: "consent/unknown.json", show: true, json: true,
			must: []string{`"decision": "REDACTED"`, `"action": "truncate_ip"`, `"path": "items[].health_category"`}},
		{name: "excluded_category", event: "events/purchase.json", consent: "consent/health_excluded.json",
			must: []string{"granted_with_exclusions", "items[].health_category  -> remove  (category user.health is excluded by the grant)", "excluded_category: the customer's grant excludes data categories the event carries (user.health); excluded_categories is drop"}},
		{name: "expired", event: "events/email.json", consent: "consent/expired.json",
			must: []string{"expired: the customer's grant for marketing expired at 2026-05-01T00:00:00Z", "consent change: chg-5", "consent change: chg-6"}},
		{name: "older_schema_version", event: "events/page_view_v1.json", consent: "consent/marketing_granted.json",
			must: []string{"written with version 1, read as version 2", "schema_not_accepted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ex := explainCase(t, tc.event, tc.consent, tc.show, goldenNow, nil)
			var b bytes.Buffer
			var err error
			ext := ".txt"
			if tc.json {
				err, ext = ex.WriteJSON(&b), ".json"
			} else {
				err = ex.WriteText(&b)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.must {
				if !strings.Contains(b.String(), m) {
					t.Errorf("output lacks %q", m)
				}
			}
			if !tc.show && strings.Contains(b.String(), "jane") {
				t.Errorf("output shows field values without --show-values:\n%s", b.String())
			}
			checkGolden(t, tc.name+ext, b.Bytes())
		})
	}
}

func TestExplainDeadLetter(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse(readTestdata(t, "policy.yaml"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeObject([]byte(`{"event_id":"e","subject_id":"","occurred_at":0,"email":"x","campaign_id":"c","message_id":"m","action":"OPEN"}`))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Explain(context.Background(), Input{Policy: pol, Source: "p.yaml", Catalog: cat, Event: ev, Now: goldenNow})
	if err != nil {
		t.Fatal(err)
	}
	if ex.DeadLetter != "missing_subject_id" || len(ex.Streams) != 0 {
		t.Errorf("dead letter %q, %d streams; want missing_subject_id and none", ex.DeadLetter, len(ex.Streams))
	}
}

func TestExplainKeyChangesPseudonyms(t *testing.T) {
	t.Parallel()
	demo := explainCase(t, "events/email.json", "consent/unknown.json", true, goldenNow, nil)
	own := explainCase(t, "events/email.json", "consent/unknown.json", true, goldenNow, []byte("another-key-of-enough-bytes"))
	if demo.Key != "demo" || own.Key != "given" {
		t.Errorf("keys %q, %q; want demo, given", demo.Key, own.Key)
	}
	a, _ := demo.Streams[1].Event.MarshalJSON()
	b, _ := own.Streams[1].Event.MarshalJSON()
	if bytes.Equal(a, b) {
		t.Error("the same pseudonyms under two keys")
	}
}
