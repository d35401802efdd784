package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/decision"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// item is one record of a generated topic, of any kind.
type item struct {
	coord Coord
	add   func(b *Batch)
}

// genItems returns n records spread over the ledger's topics (two
// partitions each), offsets dense per partition, in a random interleaving.
func genItems(r *rand.Rand, n int) []item {
	next := map[string]int64{}
	coord := func(topic string) Coord {
		p := int32(r.IntN(2))
		k := fmt.Sprintf("%s/%d", topic, p)
		c := Coord{Topic: topic, Partition: p, Offset: next[k], Time: t0.Add(time.Duration(next[k]) * time.Second)}
		next[k]++
		return c
	}
	var out []item
	for i := 0; i < n; i++ {
		subject := fmt.Sprintf("s%d", r.IntN(5))
		switch r.IntN(5) {
		case 0:
			c := ConsentChange{Coord: coord("consent.changes"), ChangeID: fmt.Sprintf("c%d", i), SubjectID: subject,
				Purpose: "marketing", Action: "GRANT", LegalBasis: "CONSENT", ExcludedCategories: []string{"user.location"},
				Source: "web", NoticeVersion: "n1", CapturedAt: t0.Add(time.Duration(i) * time.Minute)}
			out = append(out, item{c.Coord, func(b *Batch) { b.Changes = append(b.Changes, c) }})
		case 1:
			nt := Notice{Coord: coord("consent.revocations"), NoticeID: fmt.Sprintf("n%d", i), SubjectID: subject, Purposes: []string{"marketing"},
				Action: "WITHDRAW", Since: t0, ChangeID: fmt.Sprintf("c%d", i), Reason: "grant_replaced", IssuedAt: t0.Add(time.Hour)}
			out = append(out, item{nt.Coord, func(b *Batch) { b.Notices = append(b.Notices, nt) }})
		case 2:
			d := DeadLetter{Coord: coord("customer.events.dlq"), Reason: "undecodable", Error: "framing", SourceTopic: "customer.events",
				SourcePartition: 0, SourceOffset: int64(i), EventID: fmt.Sprintf("e%d", i)}
			out = append(out, item{d.Coord, func(b *Batch) { b.DeadLetters = append(b.DeadLetters, d) }})
		default:
			a := AuditEntry{Coord: coord("consent.audit"), Record: auditRecord(subject, fmt.Sprintf("e%d", i), "customer.events", int32(i%3), int64(i),
				t0.Add(time.Duration(i)*time.Second), decision.Passed, decision.Redacted)}
			a.LeafHash[0] = byte(i)
			out = append(out, item{a.Coord, func(b *Batch) { b.Audits = append(b.Audits, a) }})
		}
	}
	return out
}

// auditRecord is a decided version 2 record with one decision per given
// outcome, on streams compliant.s0, compliant.s1, ….
func auditRecord(subject, eventID, topic string, part int32, off int64, at time.Time, outcomes ...decision.Outcome) audit.Record {
	r := audit.Record{Version: 2, EventID: eventID, SubjectID: subject, Outcome: audit.Decided, EventSchema: "consentgate.events.PageView",
		PolicyVersion: "p1", SourceTopic: topic, SourcePartition: part, SourceOffset: off, ProcessedAt: at}
	for i, o := range outcomes {
		d := audit.StreamDecision{Stream: fmt.Sprintf("compliant.s%d", i), Purposes: []string{"marketing"}, Decision: o,
			Reason: "granted", DecidingPurpose: "marketing",
			Consents: []decision.PurposeConsent{{Purpose: "marketing", ChangeID: "c1", CapturedAt: t0}}}
		if o == decision.Redacted {
			d.Reason, d.TreatedFields = "granted_with_exclusions", []string{"ip_address"}
		}
		if o == decision.Dropped {
			d.Reason = "denied"
		}
		r.Decisions = append(r.Decisions, d)
	}
	return r
}

// batchOf builds the batch of items, with the positions that cover them.
func batchOf(items []item) *Batch {
	b := &Batch{}
	next := map[[2]any]int64{}
	var order [][2]any
	for _, it := range items {
		it.add(b)
		k := [2]any{it.coord.Topic, it.coord.Partition}
		if _, ok := next[k]; !ok {
			order = append(order, k)
		}
		next[k] = max(next[k], it.coord.Offset+1)
	}
	for _, k := range order {
		b.Positions = append(b.Positions, Position{Topic: k[0].(string), Partition: k[1].(int32), Next: next[k]})
	}
	return b
}

// dump returns every row of every table and the positions, ordered, as
// text: two stores with the same dump hold the same data.
func dump(t testing.TB, s *Store) string {
	t.Helper()
	var b strings.Builder
	for _, tab := range []table{tChanges, tAudits, tOutputs, tNotices, tDeadLetters, tUndecodable, tCheckpoints, tDataKeys, tKeyErasures,
		{"ledger_positions", []string{"topic", "partition_id", "next_offset", "last_hash"}, ""}, {"ledger_holds", []string{"topic", "partition_id", "next_offset", "reason"}, ""},
		{"ledger_hold_releases", []string{"topic", "partition_id", "next_offset", "hold_reason", "released_by", "release_reason"}, ""}} {
		rows, err := s.db.QueryContext(context.Background(), "SELECT "+strings.Join(tab.cols, ", ")+" FROM "+tab.name+
			" ORDER BY "+strings.Join(tab.cols, ", "))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s\n", tab.name)
		for rows.Next() {
			vals := make([]any, len(tab.cols))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					vals[i] = fmt.Sprintf("%x", bs)
				}
			}
			fmt.Fprintln(&b, vals...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}
