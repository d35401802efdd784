package console

import (
	"context"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/ledger"
)

// TestReviewVerificationCoversPartitionsWithoutRecords: a partition the
// ledger holds checkpoints of but no record (its records deleted from the
// database, never read, or a forged checkpoint of a partition that has
// none) is not verified, and neither is the audit. Before, the page listed
// only the partitions with records, and said "verified" for the audit.
func TestReviewVerificationCoversPartitionsWithoutRecords(t *testing.T) {
	f := newFixture(t, false) // partition 0: four records, two sound checkpoints
	b := &ledger.Batch{Checkpoints: []ledger.Checkpoint{{AuditTopic: "consent.audit", Partition: 1, Base: 0, Size: 3, Root: [32]byte{7},
		Note: []byte("note"), PublishedAt: t0.Add(6 * time.Hour), Coord: ledger.Coord{Topic: "consent.audit.checkpoints", Offset: 2, Time: t0}}},
		Positions: []ledger.Position{{Topic: "consent.audit.checkpoints", Partition: 0, Next: 3}}}
	if err := f.store.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, f, nil)
	w := e.do("GET", "/verification", nil, authz)
	wantText(t, w, "Audit of consent.audit: not verified", "Partition 0: verified", "Partition 1: not verified",
		"0 records in the ledger from offset 0", "ledger lacks records")
}
