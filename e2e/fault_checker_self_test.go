package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// TestFaultCheckerAccountsByOffset: the checker itself, on topics written by
// hand as an enforcer would (no consent, so both streams drop): the clean
// run has no problem, and each way of losing track of an input offset is
// caught: an input without an audit record (decided or dead-lettered), a
// dead-lettered input audited as decided, decisions out of the policy's
// order, a re-written record that disagrees with the first while consent
// did not change. A re-written record that agrees is a duplicate, not a
// problem.
func TestFaultCheckerAccountsByOffset(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	pf, err := filepath.Abs(fsPolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(pf)
	if err != nil {
		t.Fatal(err)
	}
	event := func(id, subject string) []byte {
		b, err := codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
			"event_id": id, "subject_id": subject, "occurred_at": time.UnixMilli(1_790_000_000_000).UTC(),
			"email": subject + "@mail.example", "campaign_id": "cmp", "message_id": "msg", "action": "CLICK",
			"link_url": nil, "user_agent": nil, "ip_address": nil,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type dec struct{ stream, decision, reason string }
	dropped := []dec{{"compliant.marketing", fsDropped, "unknown_subject"}, {"compliant.analytics", fsDropped, "unknown_subject"}}
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return map[string]any{"string": s}
	}
	audit := func(offset int64, id, subject, outcome, dlq string, decs []dec) kafka.Message {
		var ds []any
		for _, d := range decs {
			p := strings.TrimPrefix(d.stream, "compliant.") // the fault policy's stream of purpose p
			ds = append(ds, map[string]any{"stream": d.stream, "purposes": []any{p}, "decision": d.decision, "reason": d.reason,
				"deciding_purpose": p, "treated_fields": []any{}, "consents": []any{map[string]any{"purpose": p, "consent_change_id": nil, "consent_captured_at": nil}}})
		}
		b, err := codec.EncodeSingle("consentgate.audit.AuditRecord", map[string]any{
			"event_id": opt(id), "subject_id": opt(subject), "outcome": outcome, "dead_letter_reason": opt(dlq), "event_schema": nil,
			"policy_version": "v", "source_topic": fsEventsTopic, "source_partition": int32(0), "source_offset": offset,
			"processed_at": time.Now(), "decisions": ds,
		})
		if err != nil {
			t.Fatal(err)
		}
		m := kafka.Message{Topic: fsAuditTopic, Value: b}
		if subject != "" {
			m.Key = []byte(subject)
		}
		if id != "" {
			m.Headers = []kafka.Header{{Key: "consentgate.event_id", Value: []byte(id)}}
		}
		return m
	}
	poison := kafka.Message{Topic: fsEventsTopic, Key: []byte("fs-subj-x"), Value: []byte("not avro"), Headers: []kafka.Header{{Key: fsPoisonHeader, Value: []byte("random")}}}
	inputs := []kafka.Message{
		{Topic: fsEventsTopic, Key: []byte("s-a"), Value: event("e-a", "s-a")},
		{Topic: fsEventsTopic, Key: []byte("s-b"), Value: event("e-b", "s-b")},
		poison,
		{Topic: fsEventsTopic, Key: []byte("s-q"), Value: event("e-q", "s-q")},
	}
	deadLetter := kafka.Message{Topic: fsEventsDLQ, Key: poison.Key, Value: poison.Value, Headers: []kafka.Header{poison.Headers[0],
		{Key: "consentgate.dlq.reason", Value: []byte("undecodable")}, {Key: "consentgate.dlq.error", Value: []byte("first byte")},
		{Key: "consentgate.source.topic", Value: []byte(fsEventsTopic)}, {Key: "consentgate.source.partition", Value: []byte("0")},
		{Key: "consentgate.source.offset", Value: []byte(strconv.Itoa(2))},
	}}
	clean := func() []kafka.Message {
		return []kafka.Message{
			audit(0, "e-a", "s-a", fsDecided, "", dropped),
			audit(1, "e-b", "s-b", fsDecided, "", dropped),
			audit(2, "", "", fsDeadLettered, "undecodable", nil),
			audit(3, "e-q", "s-q", fsDecided, "", dropped),
		}
	}
	tests := []struct {
		name   string
		audits func() []kafka.Message
		want   string // a problem's kind and a part of its text; "" for none
		dups   int
	}{
		{"clean", clean, "", 0},
		{"an agreeing duplicate", func() []kafka.Message { return append(clean(), audit(0, "e-a", "s-a", fsDecided, "", dropped)) }, "", 1},
		{"a decided input without audit", func() []kafka.Message { return clean()[:3] }, "lost: input 0/3 (event e-q) has no audit record", 0},
		{"a dead-lettered input without audit", func() []kafka.Message {
			a := clean()
			return append(a[:2:2], a[3])
		}, "lost: input 0/2 (dead-lettered as undecodable) has no audit record", 0},
		{"a dead-lettered input audited as decided", func() []kafka.Message {
			a := clean()
			a[2] = audit(2, "", "", fsDecided, "", nil)
			return a
		}, "audit: audit record of dead-lettered input 0/2", 0},
		{"decisions out of the policy's order", func() []kafka.Message {
			a := clean()
			a[1] = audit(1, "e-b", "s-b", fsDecided, "", []dec{dropped[1], dropped[0]})
			return a
		}, "audit: audit record of e-b lists streams", 0},
		{"a disagreeing duplicate", func() []kafka.Message {
			return append(clean(), audit(0, "e-a", "s-a", fsDecided, "", []dec{dropped[0], {"compliant.analytics", fsDropped, "never_asked"}}))
		}, "wrong: the audit records of input 0/0 (e-a) disagree", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: fsOutputs})
			cfg := stream.DefaultConfig()
			cfg.Brokers = []string{b.Addr}
			w := stream.NewWriter(cfg)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, batch := range [][]kafka.Message{inputs, {deadLetter}, tc.audits()} {
				if err := stream.WriteAll(ctx, w, batch, nil); err != nil {
					t.Fatal(err)
				}
			}
			c := &fsChecker{Broker: b, Codec: codec, Policy: pol, Produced: inputs,
				Expect: func(fsAudit) []string { return []string{fsDropped} }}
			n, problems := c.run(t)
			var all []string
			for kind, ps := range problems {
				for _, p := range ps {
					all = append(all, kind+": "+p)
				}
			}
			found := false
			for _, p := range all {
				found = found || tc.want != "" && strings.HasPrefix(p, tc.want)
			}
			switch {
			case tc.want == "" && len(all) > 0:
				t.Errorf("problems %q, want none", all)
			case tc.want != "" && (!found || len(all) != 1):
				t.Errorf("problems %q, want exactly one starting with %q", all, tc.want)
			}
			if n.Duplicated != tc.dups || n.Sent != 4 || n.Decodable != 3 || n.DeadLettered != 1 {
				t.Errorf("counts %s: want 4 sent, 3 decodable, 1 dead-lettered, %d duplicated", n, tc.dups)
			}
		})
	}
}

// TestFaultCheckerTiesOutputsToOffsets: the checker ties outputs and their
// treated fields to input offsets, not to event ids. Two inputs carry one
// event id (a producer's retry), no consent, so compliant.analytics gets
// redacted copies: a clean run has no problem; the lost output of one of the
// two, a redacted copy that changed a field its audit record's
// treated_fields do not list, a re-written audit record that disagrees
// with the first in its treated fields, a deciding consent change the
// system of record does not give, and consents that leave out a purpose of
// the stream are each caught.
func TestFaultCheckerTiesOutputsToOffsets(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	pf, err := filepath.Abs(fsPolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(pf)
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_790_000_000_000).UTC()
	encode := func(v map[string]any) []byte {
		b, err := codec.EncodeSingle("consentgate.events.EmailEngagement", v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	input := encode(map[string]any{"event_id": "e-a", "subject_id": "s-a", "occurred_at": at, "email": "s-a@mail.example",
		"campaign_id": "cmp", "message_id": "msg", "action": "CLICK", "link_url": nil, "user_agent": nil, "ip_address": nil})
	// As the analytics stream redacts: event_id, subject_id and occurred_at
	// kept, every other field emptied.
	redacted := encode(map[string]any{"event_id": "e-a", "subject_id": "s-a", "occurred_at": at, "email": "",
		"campaign_id": "", "message_id": "", "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil})
	inputs := []kafka.Message{
		{Topic: fsEventsTopic, Key: []byte("s-a"), Value: input},
		{Topic: fsEventsTopic, Key: []byte("s-a"), Value: input}, // a producer's retry: another offset
	}
	full := []any{"action", "campaign_id", "email", "message_id"}
	consent := func(purpose, change string) any {
		c := map[string]any{"purpose": purpose, "consent_change_id": nil, "consent_captured_at": nil}
		if change != "" {
			c["consent_change_id"] = map[string]any{"string": change}
			c["consent_captured_at"] = map[string]any{"long.timestamp-millis": at}
		}
		return c
	}
	// audit is the record of input offset; consents (default: analytics,
	// never asked) are the analytics decision's.
	audit := func(offset int64, treated []any, consents ...any) kafka.Message {
		if consents == nil {
			consents = []any{consent("analytics", "")}
		}
		b, err := codec.EncodeSingle("consentgate.audit.AuditRecord", map[string]any{
			"event_id": map[string]any{"string": "e-a"}, "subject_id": map[string]any{"string": "s-a"}, "outcome": fsDecided,
			"dead_letter_reason": nil, "event_schema": nil, "policy_version": "v", "source_topic": fsEventsTopic,
			"source_partition": int32(0), "source_offset": offset, "processed_at": time.Now(),
			"decisions": []any{
				map[string]any{"stream": "compliant.marketing", "purposes": []any{"marketing"}, "decision": fsDropped, "reason": "unknown_subject",
					"deciding_purpose": "marketing", "treated_fields": []any{}, "consents": []any{consent("marketing", "")}},
				map[string]any{"stream": "compliant.analytics", "purposes": []any{"analytics"}, "decision": fsRedacted, "reason": "unknown_subject",
					"deciding_purpose": "analytics", "treated_fields": treated, "consents": consents},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: fsAuditTopic, Key: []byte("s-a"), Value: b, Headers: []kafka.Header{{Key: "consentgate.event_id", Value: []byte("e-a")}}}
	}
	output := func(offset int64) kafka.Message {
		return kafka.Message{Topic: "compliant.analytics", Key: []byte("s-a"), Value: redacted, Headers: []kafka.Header{
			{Key: "consentgate.event_id", Value: []byte("e-a")}, {Key: "consentgate.source.topic", Value: []byte(fsEventsTopic)},
			{Key: "consentgate.source.partition", Value: []byte("0")}, {Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(offset, 10))},
			{Key: "consentgate.decision", Value: []byte(fsRedacted)}}}
	}
	tests := []struct {
		name            string
		audits, outputs []kafka.Message
		want            string // a problem's kind and a part of its text; "" for none
	}{
		{"clean", []kafka.Message{audit(0, full), audit(1, full)}, []kafka.Message{output(0), output(1)}, ""},
		{"the lost output of one of two inputs sharing an event id", []kafka.Message{audit(0, full), audit(1, full)}, []kafka.Message{output(0)},
			"lost: input 0/1 (event e-a) was audited REDACTED on compliant.analytics"},
		{"treated fields that miss a changed field", []kafka.Message{audit(0, full), audit(1, full[1:])}, []kafka.Message{output(0), output(1)},
			"wrong: the REDACTED copy of input 0/1 (e-a) on compliant.analytics changed action"},
		{"a duplicate that disagrees in its treated fields", []kafka.Message{audit(0, full), audit(1, full), audit(0, append([]any{"ip_address"}, full...))},
			[]kafka.Message{output(0), output(1)}, "wrong: the audit records of input 0/0 (e-a) disagree"},
		{"a deciding consent the system of record does not have", []kafka.Message{audit(0, full), audit(1, full, consent("analytics", "chg-forged"))},
			[]kafka.Message{output(0), output(1)}, `wrong: input 0/1 (e-a) on compliant.analytics names consent change "chg-forged" for analytics`},
		{"consents that leave out a purpose", []kafka.Message{audit(0, full), audit(1, full, []any{}...)},
			[]kafka.Message{output(0), output(1)}, "wrong: input 0/1 (e-a) on compliant.analytics lists the consents of purposes []"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: fsOutputs})
			cfg := stream.DefaultConfig()
			cfg.Brokers = []string{b.Addr}
			w := stream.NewWriter(cfg)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, batch := range [][]kafka.Message{inputs, tc.outputs, tc.audits} {
				if err := stream.WriteAll(ctx, w, batch, nil); err != nil {
					t.Fatal(err)
				}
			}
			c := &fsChecker{Broker: b, Codec: codec, Policy: pol, Produced: inputs}
			n, problems := c.run(t)
			var all []string
			for kind, ps := range problems {
				for _, p := range ps {
					all = append(all, kind+": "+p)
				}
			}
			found := false
			for _, p := range all {
				found = found || tc.want != "" && strings.HasPrefix(p, tc.want)
			}
			switch {
			case tc.want == "" && len(all) > 0:
				t.Errorf("problems %q, want none", all)
			case tc.want != "" && (!found || len(all) != 1):
				t.Errorf("problems %q, want exactly one starting with %q", all, tc.want)
			}
			if n.Sent != 2 || n.Decodable != 2 || n.Decided != 2 {
				t.Errorf("counts %s: want 2 sent, 2 decodable, 2 decided", n)
			}
		})
	}
}
