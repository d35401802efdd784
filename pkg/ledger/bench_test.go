package ledger

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/decision"
)

// benchRecords is LEDGER_BENCH_RECORDS: the audit records the query
// benchmarks load (default 20,000, so that go test -bench stays fast; the
// issue's figure is 10,000,000).
func benchRecords(b *testing.B) int {
	if v := os.Getenv("LEDGER_BENCH_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("LEDGER_BENCH_RECORDS=%q: want a positive integer", v)
		}
		return n
	}
	return 20000
}

// benchBatchSize is the audit records of one ingest transaction.
const benchBatchSize = 2000

// benchAudits returns the audit entries for audit offsets [from, from+n):
// one input event each, three streams per event (PASSED, REDACTED with two
// treated fields, DROPPED), subjects spread over subjects ids, one record
// per 100 ms of processing time.
func benchAudits(from, n int64, subjects int64) []AuditEntry {
	out := make([]AuditEntry, n)
	for i := range out {
		off := from + int64(i)
		sid := fmt.Sprintf("subject-%08d", (off*7919)%subjects)
		at := t0.Add(time.Duration(off) * 100 * time.Millisecond)
		r := audit.Record{Version: 2, EventID: fmt.Sprintf("event-%012d", off), SubjectID: sid, Outcome: audit.Decided,
			EventSchema: "consentgate.events.PageView", PolicyVersion: "2026-03-01", SourceTopic: "customer.events",
			SourcePartition: int32(off % 6), SourceOffset: off / 6, ProcessedAt: at,
			Decisions: []audit.StreamDecision{
				{Stream: "compliant.analytics", Purposes: []string{"analytics"}, Decision: decision.Passed, Reason: "granted", DecidingPurpose: "analytics",
					Consents: []decision.PurposeConsent{{Purpose: "analytics", ChangeID: "chg-" + sid + "-1", CapturedAt: t0}}},
				{Stream: "compliant.marketing", Purposes: []string{"marketing"}, Decision: decision.Redacted, Reason: "granted_with_exclusions",
					DecidingPurpose: "marketing", TreatedFields: []string{"ip_address", "geo"},
					Consents: []decision.PurposeConsent{{Purpose: "marketing", ChangeID: "chg-" + sid + "-2", CapturedAt: t0}}},
				{Stream: "compliant.personalisation", Purposes: []string{"personalisation"}, Decision: decision.Dropped, Reason: "never_asked",
					DecidingPurpose: "personalisation", Consents: []decision.PurposeConsent{{Purpose: "personalisation"}}},
			}}
		e := AuditEntry{Coord: Coord{Topic: "consent.audit", Partition: int32(off % 3), Offset: off / 3, Time: at}, Record: r}
		e.LeafHash[0], e.LeafHash[1] = byte(off), byte(off>>8)
		out[i] = e
	}
	return out
}

func benchBatch(from, n, subjects int64) *Batch {
	b := &Batch{Audits: benchAudits(from, n, subjects)}
	next := map[int32]int64{}
	for _, a := range b.Audits {
		next[a.Partition] = max(next[a.Partition], a.Offset+1)
	}
	for p, o := range next {
		b.Positions = append(b.Positions, Position{Topic: "consent.audit", Partition: p, Next: o})
	}
	return b
}

func benchIngest(b *testing.B, be backend) {
	s, _ := be.open(b)
	ctx := context.Background()
	batches := make([]*Batch, b.N)
	for i := range batches {
		batches[i] = benchBatch(int64(i)*benchBatchSize, benchBatchSize, 100000)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := s.Ingest(ctx, batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatchSize)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkIngestSQLite measures audit records/s into SQLite, in batches of
// benchBatchSize (three stream decisions per record).
func BenchmarkIngestSQLite(b *testing.B) { benchIngest(b, backends[0]) }

// BenchmarkIngestPostgres measures audit records/s into PostgreSQL.
func BenchmarkIngestPostgres(b *testing.B) { benchIngest(b, backends[1]) }

// loadBench fills a store with n audit records (n/20 subjects: 20 records
// per subject).
func loadBench(b *testing.B, be backend, n int) *Store {
	s, _ := be.open(b, WithCatalog(catalog(b)))
	ctx := context.Background()
	start := time.Now()
	subjects := max(1, int64(n/20))
	for from := 0; from < n; from += benchBatchSize {
		if err := s.Ingest(ctx, benchBatch(int64(from), int64(min(benchBatchSize, n-from)), subjects)); err != nil {
			b.Fatal(err)
		}
	}
	if s.pool != nil {
		if _, err := s.db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
			b.Fatal(err)
		}
	} else if _, err := s.db.ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: loaded %d audit records in %v (%.0f records/s)", be.name, n, time.Since(start), float64(n)/time.Since(start).Seconds())
	return s
}

func benchQueries(b *testing.B, be backend) {
	n := benchRecords(b)
	s := loadBench(b, be, n)
	ctx := context.Background()
	subjects := max(1, n/20)
	b.Run("Subject", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			h, err := s.Subject(ctx, fmt.Sprintf("subject-%08d", (i*31)%subjects))
			if err != nil {
				b.Fatal(err)
			}
			if len(h.Audits) == 0 {
				b.Fatal("no audit records for the subject")
			}
		}
	})
	// A day is 864,000 records at this rate; the window is the first day
	// or all records, whichever is fewer.
	b.Run("BreachDay", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rep, err := s.Breach(ctx, BreachQuery{Streams: []string{"compliant.marketing", "compliant.analytics"}, From: t0, To: t0.Add(24 * time.Hour)})
			if err != nil {
				b.Fatal(err)
			}
			if rep.Events != int64(min(n, 864000)) {
				b.Fatalf("breach found %d events, want %d", rep.Events, min(n, 864000))
			}
		}
	})
	b.Run("Completeness", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rep, err := s.Completeness(ctx, "customer.events", nil)
			if err != nil {
				b.Fatal(err)
			}
			if !rep.Complete {
				b.Fatal("incomplete")
			}
		}
	})
	b.Run("Policies", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.Policies(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkQueriesSQLite loads LEDGER_BENCH_RECORDS audit records into
// SQLite and times Subject, a day's Breach, Completeness and Policies.
func BenchmarkQueriesSQLite(b *testing.B) { benchQueries(b, backends[0]) }

// BenchmarkQueriesPostgres is BenchmarkQueriesSQLite on PostgreSQL.
func BenchmarkQueriesPostgres(b *testing.B) { benchQueries(b, backends[1]) }
