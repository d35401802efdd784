package enforce

import (
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// readAudits decodes the audit records among out (topic consent.audit), in
// order, with ReadAudit.
func readAudits(t *testing.T, cat *avrocodec.Catalog, out []kafka.Message) []*AuditRecord {
	t.Helper()
	var as []*AuditRecord
	for _, m := range out {
		if m.Topic != "consent.audit" {
			continue
		}
		a, err := ReadAudit(cat, m.Value)
		if err != nil {
			t.Fatalf("audit record at %d: %v", len(as), err)
		}
		as = append(as, a)
	}
	return as
}

// streamDecisions returns the stream decisions of the audit records among
// out by event id and stream, failing on an event audited twice.
func streamDecisions(t *testing.T, cat *avrocodec.Catalog, out []kafka.Message) map[[2]string]StreamDecision {
	t.Helper()
	got := map[[2]string]StreamDecision{}
	seen := map[string]bool{}
	for _, a := range readAudits(t, cat, out) {
		if seen[a.EventID] {
			t.Errorf("event %s has two audit records", a.EventID)
		}
		seen[a.EventID] = true
		for _, d := range a.Decisions {
			got[[2]string{a.EventID, d.Stream}] = d
		}
	}
	return got
}
