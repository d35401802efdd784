package console

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/ledger"
)

// TestOverviewShowsHeldPartitions: a held partition is shown at the top of
// the overview, before anything else, with its position, reason and time
// and what the operator does; an overview without holds shows none.
func TestOverviewShowsHeldPartitions(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	w := e.do("GET", "/", nil, authz)
	if w.Code != http.StatusOK || strings.Contains(text(w), "Held partitions") {
		t.Fatalf("overview without holds: %d, shows held partitions:\n%s", w.Code, text(w))
	}
	if err := f.store.Hold(context.Background(), ledger.Hold{Topic: "consent.changes", Partition: 0, Next: 3,
		Reason: "the partition ends at offset 1, before the ledger's position 3", At: t0.Add(6 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	w = e.do("GET", "/", nil, authz)
	if w.Code != http.StatusOK {
		t.Fatalf("GET / = %d", w.Code)
	}
	wantText(t, w, "Held partitions (1)", "consent.changes/0 3 2026-11-20 15:00:00.000Z the partition ends at offset 1, before the ledger's position 3",
		"consentctl release --topic consent.changes --partition 0 --reason")
	body := w.Body.String()
	if i, j := strings.Index(body, `id="holds"`), strings.Index(body, `id="tables"`); i < 0 || j < 0 || i > j {
		t.Errorf("the held partitions are not shown before the ledger's tables (at %d, tables at %d)", i, j)
	}
	if !strings.Contains(body, `role="alert"`) {
		t.Error("the held partitions are not an alert")
	}
}

// TestCompletenessWithAHeldAuditPartition: while a partition of the audit
// topic is held, the audit records it holds past the position are not in
// the ledger: no input topic is shown complete, on the completeness page
// or the overview, and the page says why. A hold of another topic does
// not change completeness.
func TestCompletenessWithAHeldAuditPartition(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	ctx := context.Background()
	if err := f.store.Hold(ctx, ledger.Hold{Topic: "consent.changes", Partition: 0, Next: 3, Reason: "r", At: t0}); err != nil {
		t.Fatal(err)
	}
	wantText(t, e.do("GET", "/completeness?topic=customer.events", nil, authz), "must have exactly one audit record: complete")
	if err := f.store.Hold(ctx, ledger.Hold{Topic: "consent.audit", Partition: 1, Next: 7, Reason: "the record at offset 6 is not the one the ledger read there", At: t0}); err != nil {
		t.Fatal(err)
	}
	w := e.do("GET", "/completeness?topic=customer.events", nil, authz)
	wantText(t, w, "must have exactly one audit record: incomplete", "consent.audit/1", "7", "the record at offset 6 is not the one the ledger read there")
	wantText(t, e.do("GET", "/", nil, authz), "customer.events incomplete")
}
