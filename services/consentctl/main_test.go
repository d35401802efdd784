package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/ledger"
)

func runCtl(t *testing.T, vars map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}, args)
	return out.String(), errb.String(), code
}

func TestCommandLine(t *testing.T) {
	if _, _, code := runCtl(t, nil); code != 1 {
		t.Errorf("no command: exit %d, want 1", code)
	}
	if out, _, code := runCtl(t, nil, "--help"); code != 0 || !strings.Contains(out, "completeness") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if _, errs, code := runCtl(t, nil, "frobnicate"); code != 1 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: exit %d: %s", code, errs)
	}
	for _, c := range []string{"subject", "breach", "completeness", "verify", "prove", "keygen", "audit-export"} {
		if out, _, code := runCtl(t, nil, c, "--help"); code != 0 || !strings.Contains(out, "Usage: consentctl "+c) {
			t.Errorf("%s --help: exit %d\n%s", c, code, out)
		}
	}
	if _, errs, code := runCtl(t, nil, "breach", "--from", "yesterday", "--to", "2026-12-01"); code != 1 || !strings.Contains(errs, "RFC 3339") {
		t.Errorf("bad --from: exit %d: %s", code, errs)
	}
	if _, errs, code := runCtl(t, nil, "keygen"); code != 1 || !strings.Contains(errs, "--out") {
		t.Errorf("keygen without --out: exit %d: %s", code, errs)
	}
}

// TestSubjectOnAnEmptyLedgerAndWhatErrorsShow: a subject the ledger does
// not know has an empty history (exit 0); a database that cannot be opened
// is an error that shows neither the subject id nor the DSN's password.
func TestSubjectOnAnEmptyLedgerAndWhatErrorsShow(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "l.db")
	out, _, code := runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "subject", "jane@example.com", "--json")
	if code != 0 || !strings.Contains(out, `"subject_id": "jane@example.com"`) {
		t.Fatalf("empty ledger: exit %d\n%s", code, out)
	}
	_, errs, code := runCtl(t, map[string]string{"LEDGER_DSN": "postgres://u:hunter2secret@127.0.0.1:1/x?connect_timeout=1"}, "subject", "jane@example.com")
	if code != 1 || strings.Contains(errs, "hunter2secret") || strings.Contains(errs, "jane@example.com") {
		t.Fatalf("unreachable database: exit %d, stderr %q", code, errs)
	}
	// completeness of a topic the ledger holds no audit record of is not
	// complete (a mistyped topic, or a ledger not caught up): exit 2.
	s, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, _, code := runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "completeness"); code != 2 {
		t.Errorf("completeness of nothing: exit %d, want 2", code)
	}
	export := filepath.Join(dir, "x.json")
	if _, _, code := runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "subject", "s-1", "--export", export); code != 0 {
		t.Fatal("export failed")
	}
	if st, err := os.Stat(export); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v, %v", st.Mode().Perm(), err)
	}
}

// TestBreachCSVCellsAreNotFormulas: the review found a subject id starting
// with = landing as is in the breach export, which a spreadsheet runs.
func TestBreachCSVCellsAreNotFormulas(t *testing.T) {
	rep := &ledger.BreachReport{BySubject: []ledger.BreachSubject{
		{SubjectID: `=HYPERLINK("http://x","y")`, Streams: []ledger.BreachStream{{Stream: "compliant.marketing"}}},
		{SubjectID: "+1 555", Streams: []ledger.BreachStream{{Stream: "compliant.marketing"}}},
		{SubjectID: "c-1001", Streams: []ledger.BreachStream{{Stream: "compliant.marketing"}}},
	}}
	var b bytes.Buffer
	if err := breachCSV(&b, rep); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[1][0] != `'=HYPERLINK("http://x","y")` || rows[2][0] != "'+1 555" || rows[3][0] != "c-1001" {
		t.Fatalf("rows: %q", rows)
	}
}

// TestPoliciesAndStatsReadTheLedger: both commands open the ledger their
// flags name and print what it holds, as text and as JSON.
func TestPoliciesAndStatsReadTheLedger(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "l.db")
	s, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	b := &ledger.Batch{
		Audits: []ledger.AuditEntry{{Coord: ledger.Coord{Topic: "consent.audit", Offset: 0, Time: at}, Record: audit.Record{
			Version: 2, EventID: "e-1", SubjectID: "s-1", Outcome: audit.Decided, EventSchema: "consentgate.events.PageView",
			PolicyVersion: "2026-03-01", SourceTopic: "customer.events", ProcessedAt: at,
			Decisions: []audit.StreamDecision{{Stream: "compliant.analytics", Purposes: []string{"analytics"}, Decision: decision.Passed, Reason: "granted"}},
		}}},
		Positions: []ledger.Position{{Topic: "consent.audit", Partition: 0, Next: 1}},
	}
	if err := s.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	s.Close()
	vars := map[string]string{"LEDGER_DSN": dsn}
	if out, errs, code := runCtl(t, vars, "policies"); code != 0 || !strings.Contains(out, "2026-03-01") || !strings.Contains(out, "compliant.analytics") {
		t.Errorf("policies: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := runCtl(t, vars, "policies", "--json"); code != 0 || !strings.Contains(out, `"2026-03-01"`) {
		t.Errorf("policies --json: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := runCtl(t, vars, "stats"); code != 0 || !strings.Contains(out, "audit_records") || !strings.Contains(out, "consent.audit") {
		t.Errorf("stats: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := runCtl(t, map[string]string{"LEDGER_DSN": "postgres://u:p@127.0.0.1:1/x?connect_timeout=1"}, "stats"); code != 1 || !strings.Contains(errs, "LEDGER_DSN") {
		t.Errorf("stats on an unreachable ledger: exit %d: %s", code, errs)
	}
}
