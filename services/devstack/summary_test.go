package main

import (
	"context"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/schemas"
)

// TestSummaryCountsEveryStreamOfAnAuditRecord: one audit record (version 2)
// lists the decision of every stream; the summary counts each, and a
// DEAD_LETTERED record counts for no stream.
func TestSummaryCountsEveryStreamOfAnAuditRecord(t *testing.T) {
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	s := &summary{codec: codec, counts: map[string]map[string]int64{}}
	dec := func(stream, decision string) map[string]any {
		return map[string]any{"stream": stream, "purposes": []any{"p"}, "decision": decision, "reason": "r", "deciding_purpose": "p",
			"treated_fields": []any{}, "consents": []any{}}
	}
	record := func(outcome string, decisions ...any) map[string]any {
		return map[string]any{"event_id": nil, "subject_id": nil, "outcome": outcome, "dead_letter_reason": nil, "event_schema": nil,
			"policy_version": "v", "source_topic": "customer.events", "source_partition": int32(0), "source_offset": int64(1),
			"processed_at": time.Now(), "decisions": decisions}
	}
	for _, v := range []map[string]any{
		record("DECIDED", dec("compliant.marketing", "PASSED"), dec("compliant.analytics", "REDACTED")),
		record("DECIDED", dec("compliant.marketing", "DROPPED"), dec("compliant.analytics", "REDACTED")),
		record("DEAD_LETTERED"),
	} {
		b, err := codec.EncodeSingle("consentgate.audit.AuditRecord", v)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := codec.Decode(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		s.count(rec.Value)
	}
	want := map[string]map[string]int64{
		"compliant.marketing": {"PASSED": 1, "DROPPED": 1},
		"compliant.analytics": {"REDACTED": 2},
	}
	for stream, w := range want {
		for d, n := range w {
			if got := s.counts[stream][d]; got != n {
				t.Errorf("%s %s = %d, want %d", stream, d, got, n)
			}
		}
	}
	if len(s.counts) != 2 || len(s.streams) != 2 {
		t.Errorf("counts %v, streams %v: want the two streams only", s.counts, s.streams)
	}
}
