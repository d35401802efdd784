package enforce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestAuditTellsWhatTheRunnerCouldNotDeliver drives the enforcer with the
// real stream.Runner against the real broker, with one topic refusing the
// records of one input as too large (its max.message.bytes), so that the
// Runner replaces them by a dead letter of the input (pkg/stream,
// WriteEach / replaceRejected). The contract (DESIGN.md, "Every decision
// is recorded"): every input offset has exactly one audit record, and a
// stream the audit lists PASSED or REDACTED holds the event.
//
//   - output: compliant.marketing refuses the event's copy (a topic limit
//     of 4 KiB). The audit record must not say the event was PASSED on
//     compliant.marketing.
//   - audit: a misconfigured audit topic (a limit of 100 bytes, below any
//     audit record; with ids bounded, nothing else makes one too large)
//     refuses the audit records. The Runner must not commit an offset
//     without its audit record: it stops, Run returns the error, nothing
//     of the batch is committed and nothing is dead-lettered. Before, the
//     Runner dead-lettered the inputs and committed them without audit.
//   - hostile ids: default limits everywhere; the event's id is 300 KiB,
//     its subject id 200 KiB and its key short. Its outputs would fit,
//     an audit record carrying the ids (in the value, the event id header,
//     the subject as key) would not: the enforcer dead-letters the event as
//     id_too_long (ids are bounded, MaxIDBytes) with exactly one
//     DEAD_LETTERED audit record that leaves both ids out, and the Runner
//     has nothing to dead-letter. Before ids were bounded the event was
//     published and its offset committed without an audit record.
func TestAuditTellsWhatTheRunnerCouldNotDeliver(t *testing.T) {
	// The devbroker creates consent.audit at start: the test audits to a
	// topic of its own, to give it a limit.
	const auditTopic = "undeliverable.audit"
	for _, refusing := range []string{"compliant.marketing", auditTopic, "hostile ids"} {
		t.Run(refusing, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.e.opts.AuditTopic = auditTopic
			subject := "s-big" // hostile ids: of the events around the hostile one
			f.grant(t, subject, "marketing")
			f.grant(t, subject, "analytics")
			b := brokertest.Start(t, brokertest.Options{Partitions: 1})
			topics := []string{"customer.events", "compliant.marketing", "compliant.analytics", auditTopic}
			for _, tp := range topics {
				cfg := map[string]string{}
				switch {
				case tp == refusing && tp == auditTopic:
					cfg["max.message.bytes"] = "100"
				case tp == refusing:
					cfg["max.message.bytes"] = "4096"
				}
				b.CreateTopicsWithConfig(t, 1, cfg, tp)
			}
			cfg := stream.DefaultConfig()
			cfg.Brokers = []string{b.Addr}
			w := stream.NewWriter(cfg)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			// Offsets 0 and 2 are small; offset 1 carries a long link_url
			// (the refused topic's limit is 4 KiB), or hostile ids.
			in := []kafka.Message{f.email(t, 0, "e0", subject), f.bigEmail(t, refusing, subject), f.email(t, 0, "e2", subject)}
			for i := range in {
				in[i].Topic, in[i].Partition, in[i].Offset = "customer.events", 0, 0
			}
			if err := stream.WriteAll(ctx, w, in, nil); err != nil {
				t.Fatal(err)
			}
			rc := stream.ReaderConfig{Topics: []string{"customer.events"}, GroupID: "undeliverable", MaxWait: 50 * time.Millisecond,
				SessionTimeout: 6 * time.Second, FromBeginning: true}
			src := stream.NewReader(cfg, rc)
			runner := &stream.Runner{Source: src, Sink: w, Process: f.e.Process, BatchSize: 10, Linger: 20 * time.Millisecond,
				DrainTimeout: 2 * time.Second, MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			f.e.Attach(runner) // as main does
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- runner.Run(rctx) }()
			if refusing == auditTopic {
				var err error
				select {
				case err = <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("runner still running 30s after the audit topic refused every audit record: want it stopped")
				}
				stop()
				src.Close()
				if err == nil || !strings.Contains(err.Error(), "uncommitted") || !strings.Contains(err.Error(), auditTopic) {
					t.Fatalf("Run returned %v, want the refused audit records, offsets uncommitted", err)
				}
				if n := runner.Records.Load(); n != 0 {
					t.Errorf("%d inputs committed, want none: their audit records were never written", n)
				}
				if n := runner.DeadLettered.Load(); n != 0 {
					t.Errorf("the runner dead-lettered %d inputs, want none", n)
				}
				if dl := b.ReadAll(t, "customer.events.dlq", 300*time.Millisecond, 10*time.Second); len(dl) != 0 {
					t.Errorf("%d dead letters, want none", len(dl))
				}
				if as := b.ReadAll(t, auditTopic, 300*time.Millisecond, 10*time.Second); len(as) != 0 {
					t.Errorf("%d audit records written to a topic that refuses them", len(as))
				}
				// The committed offset of the group: none.
				got, err := stream.Committed(ctx, cfg, "undeliverable", []string{"customer.events"})
				if err != nil {
					t.Fatal(err)
				}
				if off := got["customer.events"][0]; off != -1 {
					t.Errorf("the group committed offset %d of customer.events, want nothing committed", off)
				}
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			for runner.Records.Load() < int64(len(in)) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			stop()
			if err := <-done; err != nil {
				t.Fatalf("runner: %v", err)
			}
			src.Close()
			if n := runner.Records.Load(); n != int64(len(in)) {
				t.Fatalf("%d of %d inputs committed", n, len(in))
			}
			if refusing == "hostile ids" {
				if runner.DeadLettered.Load() != 0 || f.e.DeadLettered.Load() != 1 {
					t.Fatalf("the runner dead-lettered %d inputs and the enforcer %d, want 0 and 1 (id_too_long)", runner.DeadLettered.Load(), f.e.DeadLettered.Load())
				}
				dl := b.ReadAll(t, "customer.events.dlq", 300*time.Millisecond, 10*time.Second)
				if len(dl) != 1 || !bytes.Equal(dl[0].Value, in[1].Value) || !bytes.Equal(dl[0].Key, in[1].Key) {
					t.Errorf("%d dead letters, want the hostile input's, untouched", len(dl))
				} else if r, _ := stream.Header(dl[0], HeaderDLQReason); r != DeadLetterIDTooLong {
					t.Errorf("dead letter reason %q, want %s", r, DeadLetterIDTooLong)
				}
			} else if runner.DeadLettered.Load() != 1 {
				t.Fatalf("the runner dead-lettered %d inputs, want 1: is the refusing topic's limit still below the event?", runner.DeadLettered.Load())
			}

			// What each stream holds, by source offset.
			onStream := map[string]map[int64]bool{}
			for _, tp := range []string{"compliant.marketing", "compliant.analytics"} {
				onStream[tp] = map[int64]bool{}
				for _, m := range b.ReadAll(t, tp, 300*time.Millisecond, 10*time.Second) {
					so, _ := stream.Header(m, HeaderSourceOffset)
					off, _ := strconv.ParseInt(so, 10, 64)
					onStream[tp][off] = true
				}
			}
			audits := map[int64][]*AuditRecord{}
			auditMsgs := map[int64]kafka.Message{}
			for _, m := range b.ReadAll(t, auditTopic, 300*time.Millisecond, 10*time.Second) {
				a, err := ReadAudit(f.codec.Catalog(), m.Value)
				if err != nil {
					t.Fatalf("audit record at %d: %v", m.Offset, err)
				}
				audits[a.SourceOffset] = append(audits[a.SourceOffset], a)
				auditMsgs[a.SourceOffset] = m
			}
			for off := range int64(len(in)) {
				as := audits[off]
				if len(as) != 1 {
					t.Errorf("input offset %d has %d audit records, want exactly 1", off, len(as))
					continue
				}
				if off == 1 && refusing == "compliant.marketing" {
					d := as[0].Decisions
					if len(d) != 2 || d[0].Decision != "DROPPED" || d[0].Reason != ReasonUndelivered || len(d[0].TreatedFields) != 0 ||
						d[1].Decision != "PASSED" || d[1].Reason != "granted" || len(d[0].Consents) != 1 || d[0].Consents[0].ChangeID != "c-s-big-marketing" {
						t.Errorf("input offset 1: decisions %+v, want compliant.marketing DROPPED (undelivered) with its consent, compliant.analytics PASSED", d)
					}
				}
				if off == 1 && refusing == "hostile ids" {
					a, m := as[0], auditMsgs[off]
					_, hasID := stream.Header(m, HeaderEventID)
					if a.Outcome != AuditDeadLettered || a.DeadLetterReason != DeadLetterIDTooLong || a.EventID != "" || a.SubjectID != "" ||
						len(m.Key) != 0 || hasID || len(a.Decisions) != 0 {
						t.Errorf("input offset 1: %s %q, event id of %d bytes, subject of %d, key of %d, event-id header %v, %d decisions; "+
							"want DEAD_LETTERED id_too_long without ids, key or event-id header", a.Outcome, a.DeadLetterReason,
							len(a.EventID), len(a.SubjectID), len(m.Key), hasID, len(a.Decisions))
					}
				}
				for _, d := range as[0].Decisions {
					if (d.Decision == "PASSED" || d.Decision == "REDACTED") && !onStream[d.Stream][off] {
						t.Errorf("input offset %d: the audit record says %s (%s) on %s, but %s holds nothing of it (the runner dead-lettered it)",
							off, d.Decision, d.Reason, d.Stream, d.Stream)
					}
				}
			}
		})
	}
}

// bigEmail is the event of subject whose records are refused: its
// link_url is 6 KiB when compliant.marketing refuses, its event id 300 KiB,
// its subject id 200 KiB and its key short for hostile ids, and an
// ordinary click when the audit topic refuses (every audit record).
func (f *fixture) bigEmail(t *testing.T, refusing, subject string) kafka.Message {
	t.Helper()
	id, url, key := "e1", strings.Repeat("u", 6<<10), subject
	switch refusing {
	case "compliant.marketing":
	case "hostile ids":
		id, url, key = "e1-"+strings.Repeat("i", 300<<10), "https://example.test/", "k"
		subject = "s-" + strings.Repeat("s", 200<<10)
	default:
		url = "https://example.test/"
	}
	b, err := f.codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
		"event_id": id, "subject_id": subject, "occurred_at": time.Now(), "email": "x@example.test",
		"campaign_id": "c", "message_id": "m", "action": "CLICK", "link_url": map[string]any{"string": url}, "user_agent": nil, "ip_address": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: []byte(key), Value: b, Headers: []kafka.Header{{Key: "trace", Value: []byte(fmt.Sprint(len(url)))}}}
}

// TestProcessInterleavedDeadLettersKeepOrder: undecodable and id-less
// inputs between events of one subject get their DEAD_LETTERED audit
// records in input order, and the events around them are decided and
// published in order, each with its own audit record.
func TestProcessInterleavedDeadLettersKeepOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.grant(t, "s1", "marketing")
	garbage := kafka.Message{Topic: "customer.events", Partition: 1, Offset: 31, Key: []byte("s1"), Value: []byte{0xC3, 0x01, 9}}
	batch := []kafka.Message{f.email(t, 30, "e1", "s1"), garbage, f.email(t, 32, "e2", "s1"), f.email(t, 33, "", "s1"), f.email(t, 34, "e3", "s1")}
	out, err := f.e.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	got := byTopic(out)
	var published []string
	for _, m := range got["compliant.marketing"] {
		id, _ := stream.Header(m, HeaderEventID)
		published = append(published, id)
	}
	if strings.Join(published, ",") != "e1,e2,e3" {
		t.Errorf("compliant.marketing got %v, want e1,e2,e3 in order", published)
	}
	as := readAudits(t, f.codec.Catalog(), out)
	want := []struct {
		outcome AuditOutcome
		reason  string
		id, key string
	}{{AuditDecided, "", "e1", "s1"}, {AuditDeadLettered, DeadLetterUndecodable, "", ""}, {AuditDecided, "", "e2", "s1"},
		{AuditDeadLettered, DeadLetterMissingEventID, "", "s1"}, {AuditDecided, "", "e3", "s1"}}
	if len(as) != len(want) {
		t.Fatalf("%d audit records, want %d", len(as), len(want))
	}
	for i, a := range as {
		w, m := want[i], got["consent.audit"][i]
		if a.SourceOffset != batch[i].Offset || a.Outcome != w.outcome || a.DeadLetterReason != w.reason || a.EventID != w.id || string(m.Key) != w.key {
			t.Errorf("audit record %d: offset %d %s %q id %q key %q, want offset %d %s %q id %q key %q", i, a.SourceOffset, a.Outcome,
				a.DeadLetterReason, a.EventID, m.Key, batch[i].Offset, w.outcome, w.reason, w.id, w.key)
		}
		if w.outcome == AuditDecided && (len(a.Decisions) != 2 || a.Decisions[0].Decision != "PASSED") {
			t.Errorf("audit record %d: decisions %+v, want compliant.marketing PASSED first", i, a.Decisions)
		}
	}
}
