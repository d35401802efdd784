package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/ledger"
)

// heldLedger is an SQLite ledger with a complete audit of customer.events
// (offsets 0..3, audited from consent.audit/0 and /1) and, when given,
// holds.
func heldLedger(t *testing.T, holds ...ledger.Hold) string {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "l.db")
	ctx := context.Background()
	s, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	b := &ledger.Batch{}
	next := map[int32]int64{}
	for off := int64(0); off < 4; off++ {
		p := int32(off % 2)
		b.Audits = append(b.Audits, ledger.AuditEntry{Coord: ledger.Coord{Topic: "consent.audit", Partition: p, Offset: next[p], Time: at},
			Record: audit.Record{Version: 2, EventID: "e", SubjectID: "jane@example.com", Outcome: audit.Decided,
				EventSchema: "consentgate.events.PageView", PolicyVersion: "p1", SourceTopic: "customer.events", SourceOffset: off, ProcessedAt: at,
				Decisions: []audit.StreamDecision{{Stream: "compliant.analytics", Purposes: []string{"analytics"}, Decision: decision.Passed, Reason: "granted"}}}})
		next[p]++
	}
	for p, n := range next {
		b.Positions = append(b.Positions, ledger.Position{Topic: "consent.audit", Partition: p, Next: n})
	}
	if err := s.Ingest(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, h := range holds {
		if err := s.Hold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	return dsn
}

var heldAt = time.Date(2026, 3, 3, 8, 30, 0, 0, time.UTC)

const heldReason = "the partition ends at offset 0, before the ledger's position 2: its offsets started again"

// TestCompletenessWithAHeldAuditPartitionIsNotComplete: the ledger no
// longer reads a held audit partition, so the audit records it holds past
// the ledger's position are not in the ledger, and no input topic's
// audit can be shown complete, whatever the records the ledger has say.
// A hold of another topic (consent changes) does not touch completeness.
func TestCompletenessWithAHeldAuditPartitionIsNotComplete(t *testing.T) {
	vars := map[string]string{"LEDGER_DSN": heldLedger(t)}
	if out, errs, code := runCtl(t, vars, "completeness"); code != 0 || strings.Contains(out, "NOT complete") {
		t.Fatalf("completeness without holds: exit %d\n%s%s", code, out, errs)
	}
	vars["LEDGER_DSN"] = heldLedger(t, ledger.Hold{Topic: "consent.changes", Partition: 0, Next: 5, Reason: heldReason, At: heldAt})
	if out, errs, code := runCtl(t, vars, "completeness"); code != 0 || !strings.Contains(out, "consent.changes/0") {
		t.Errorf("completeness with a held consent.changes partition: exit %d, want 0 and a note of the hold\n%s%s", code, out, errs)
	}
	vars["LEDGER_DSN"] = heldLedger(t, ledger.Hold{Topic: "consent.audit", Partition: 1, Next: 2, Reason: heldReason, At: heldAt})
	out, errs, code := runCtl(t, vars, "completeness")
	if code != 2 || !strings.Contains(out, "NOT complete") || !strings.Contains(out, "consent.audit/1") || !strings.Contains(out, "2026-03-03T08:30:00.000Z") {
		t.Errorf("completeness with a held audit partition: exit %d, want 2, NOT complete, naming consent.audit/1 and when\n%s%s", code, out, errs)
	}
	out, errs, code = runCtl(t, vars, "completeness", "--json")
	var rep struct {
		Complete bool                   `json:"complete"`
		Held     []ledger.HeldPartition `json:"held_audit_partitions"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("completeness --json: %v\n%s", err, out)
	}
	if code != 2 || rep.Complete || len(rep.Held) != 1 || rep.Held[0].Partition != 1 || rep.Held[0].Next != 2 {
		t.Errorf("completeness --json with a held audit partition: exit %d, %+v\n%s%s", code, rep, out, errs)
	}
	// Another audit topic name (LEDGER_AUDIT_TOPIC) is held the same way,
	// even before any of its records is in the ledger.
	vars["LEDGER_DSN"] = heldLedger(t, ledger.Hold{Topic: "prod.audit", Partition: 0, Next: 2, Reason: heldReason, At: heldAt})
	vars["LEDGER_AUDIT_TOPIC"] = "prod.audit"
	if out, errs, code := runCtl(t, vars, "completeness"); code != 2 || !strings.Contains(out, "prod.audit/0") {
		t.Errorf("completeness with the held audit topic of LEDGER_AUDIT_TOPIC: exit %d, want 2\n%s%s", code, out, errs)
	}
}

// TestStatsShowsHolds: stats lists each held partition (topic, partition,
// position, reason, since), as text and JSON, and exits 2 while any is
// held; no personal data is printed.
func TestStatsShowsHolds(t *testing.T) {
	vars := map[string]string{"LEDGER_DSN": heldLedger(t)}
	if out, errs, code := runCtl(t, vars, "stats"); code != 0 || strings.Contains(out, "HELD") {
		t.Fatalf("stats without holds: exit %d\n%s%s", code, out, errs)
	}
	vars["LEDGER_DSN"] = heldLedger(t, ledger.Hold{Topic: "consent.audit", Partition: 1, Next: 2, Reason: heldReason, At: heldAt},
		ledger.Hold{Topic: "customer.events.dlq", Partition: 0, Next: 9, Reason: "the record at offset 8 is not the one the ledger read there", At: heldAt})
	out, errs, code := runCtl(t, vars, "stats")
	for _, want := range []string{"HELD", "consent.audit/1", "customer.events.dlq/0", heldReason, "2026-03-03T08:30:00.000Z", "consentctl release"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats with holds lacks %q", want)
		}
	}
	if code != 2 || strings.Contains(out+errs, "jane@example.com") {
		t.Errorf("stats with holds: exit %d, want 2, without personal data\n%s%s", code, out, errs)
	}
	out, errs, code = runCtl(t, vars, "stats", "--json")
	var st ledger.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	if code != 2 || len(st.Holds) != 2 || st.Holds[0] != (ledger.HeldPartition{Topic: "consent.audit", Partition: 1, Next: 2, Reason: heldReason, Since: heldAt}) {
		t.Errorf("stats --json with holds: exit %d, holds %+v\n%s", code, st.Holds, errs)
	}
}

// TestReleaseDeletesTheHoldAndSaysWhat: release refuses without a reason,
// without a partition or an operator, and for a partition not held,
// leaving the hold; with them it deletes the hold, prints what it
// released and who decided when and why, and stats is clean again.
func TestReleaseDeletesTheHoldAndSaysWhat(t *testing.T) {
	dsn := heldLedger(t, ledger.Hold{Topic: "consent.audit", Partition: 1, Next: 2, Reason: heldReason, At: heldAt})
	vars := map[string]string{"LEDGER_DSN": dsn, "USER": "olga"}
	for _, args := range [][]string{
		{"release", "--topic", "consent.audit", "--partition", "1"},
		{"release", "--topic", "consent.audit", "--partition", "1", "--reason", "  "},
		{"release", "--topic", "consent.audit", "--reason", "checked"},
		{"release", "--partition", "1", "--reason", "checked"},
		{"release", "--topic", "consent.audit", "--partition", "x", "--reason", "checked"},
		{"release", "--topic", "consent.audit", "--partition", "0", "--reason", "checked"},
	} {
		if out, errs, code := runCtl(t, vars, args...); code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	if _, errs, code := runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "release", "--topic", "consent.audit", "--partition", "1", "--reason", "checked"); code != 1 || !strings.Contains(errs, "--by") {
		t.Errorf("release without an operator (no --by, no USER): exit %d: %s", code, errs)
	}
	if _, _, code := runCtl(t, vars, "stats"); code != 2 {
		t.Fatalf("a refused release released the hold (stats exit %d)", code)
	}
	out, errs, code := runCtl(t, vars, "release", "--topic", "consent.audit", "--partition", "1", "--reason", "pointed back at the production cluster (CHG-1234)")
	for _, want := range []string{"released consent.audit/1", "position 2", heldReason, "2026-03-03T08:30:00.000Z", "olga", "pointed back at the production cluster (CHG-1234)", "Restart the ledger"} {
		if !strings.Contains(out, want) {
			t.Errorf("release output lacks %q", want)
		}
	}
	if code != 0 {
		t.Fatalf("release: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := runCtl(t, vars, "stats"); code != 0 || strings.Contains(out, "HELD") || !strings.Contains(out, "hold released") {
		t.Errorf("stats after the release: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := runCtl(t, vars, "release", "--topic", "consent.audit", "--partition", "1", "--reason", "again"); code != 1 || !strings.Contains(errs, "not held") {
		t.Errorf("a second release: exit %d: %s", code, errs)
	}
	// --json prints the release as one record for the change log.
	dsn = heldLedger(t, ledger.Hold{Topic: "consent.audit", Partition: 0, Next: 2, Reason: heldReason, At: heldAt})
	out, errs, code = runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "release", "--topic", "consent.audit", "--partition", "0", "--reason", "r", "--by", "ops-team", "--json")
	var rel releaseRecord
	if err := json.Unmarshal([]byte(out), &rel); err != nil {
		t.Fatalf("release --json: %v\n%s%s", err, out, errs)
	}
	if code != 0 || rel.Hold.Topic != "consent.audit" || rel.Hold.Partition != 0 || rel.Hold.Next != 2 || !rel.Hold.Since.Equal(heldAt) ||
		rel.By != "ops-team" || rel.Reason != "r" || rel.ReleasedAt.IsZero() || rel.Ledger != "sqlite" {
		t.Errorf("release --json: exit %d, %+v", code, rel)
	}
}
