package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/ledger"
)

// reviewLedger is a SQLite ledger holding one audit record of subject,
// an event of schema published PASSED on compliant.marketing at at.
func reviewLedger(t *testing.T, subject, schema string, at time.Time) string {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	s, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := audit.Record{Version: 2, EventID: "ev-1", SubjectID: subject, Outcome: audit.Decided, EventSchema: schema, PolicyVersion: "p1",
		SourceTopic: "customer.events", SourcePartition: 0, SourceOffset: 0, ProcessedAt: at,
		Decisions: []audit.StreamDecision{{Stream: "compliant.marketing", Purposes: []string{"marketing"}, Decision: decision.Passed,
			Reason: "granted", DecidingPurpose: "marketing"}}}
	b := ledger.Batch{Audits: []ledger.AuditEntry{{Coord: ledger.Coord{Topic: "consent.audit", Offset: 0, Time: at}, Record: r}}}
	if err := s.Ingest(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// TestReviewBreachTextAndCSVNameUnknownSchemas: when events of a schema
// the catalog does not hold reached a stream, their data categories are
// unknown (ledger.BreachStream.UnknownSchemas: "must be assumed to be
// any"). The text summary and the CSV export must say so: before, the
// category table simply lacked them, as if nothing of them was received.
func TestReviewBreachTextAndCSVNameUnknownSchemas(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dsn := reviewLedger(t, "subject-unknown-schema", "consentgate.events.NotInCatalog", at)
	export := filepath.Join(t.TempDir(), "breach.csv")
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	code := run(context.Background(), e, []string{"breach", "--dsn", dsn, "--from", "2026-03-01", "--to", "2026-03-02", "--export", export})
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "consentgate.events.NotInCatalog") {
		t.Errorf("the text summary does not name the schema whose categories are unknown:\n%s", out.String())
	}
	csv, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(csv), "unknown_schemas") || !strings.Contains(string(csv), "consentgate.events.NotInCatalog") {
		t.Errorf("the CSV export does not flag the unknown schema:\n%s", csv)
	}
	if strings.Contains(errOut.String(), "subject-unknown-schema") {
		t.Errorf("subject id on stderr: %s", errOut.String())
	}
}

// TestReviewBreachToIsExclusiveToTheMillisecond: --to is exclusive; an
// output processed at 12:00:00.000 lies before --to 12:00:00.0005 and must
// be counted (the ledger keeps milliseconds; truncating --to to them
// dropped it).
func TestReviewBreachToIsExclusiveToTheMillisecond(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dsn := reviewLedger(t, "subject-edge", "consentgate.events.PageView", at)
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	code := run(context.Background(), e, []string{"breach", "--dsn", dsn, "--from", "2026-03-01T11:00:00Z", "--to", "2026-03-01T12:00:00.0005Z", "--json"})
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `"subjects": 1`) {
		t.Errorf("the output at 12:00:00.000, before --to 12:00:00.0005, is not counted:\n%s", out.String())
	}
}
