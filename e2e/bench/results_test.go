package main

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestJudge checks the targets of issue 11 against hand-computed figures:
// which are met, the margins, and that a missing measurement never counts
// as met.
func TestJudge(t *testing.T) {
	r := &results{
		Settings: settings{Subjects: 1000000},
		Policies: []*policyResult{
			{Label: "deploy", Enforcer: throughput{EventsPerSec: 8000, CPUPer1000: 0.030}, Matched: throughput{EventsPerSec: 10000, CPUPer1000: 0.020}},
			{Label: "bench", Enforcer: throughput{EventsPerSec: 8000, CPUPer1000: 0.040}, Matched: throughput{EventsPerSec: 10000, CPUPer1000: 0.020}},
		},
		OneToOne:           throughput{EventsPerSec: 20000},
		LatencyPolicy:      "e2e/bench/policy.yaml",
		Latency:            latencyResult{EndToEnd: percentiles{Samples: 10, P99: 30}},
		PassthroughLatency: latencyResult{EndToEnd: percentiles{Samples: 10, P99: 20}},
		Withdrawal:         withdrawalResult{Latency: percentiles{Samples: 5, P99: 200}},
		PeakRSSMiB:         map[string]float64{"enforcer": 100, "enforcer-deploy": 300, "devbroker": 900},
	}
	r.finish()
	if p := r.Policies[1]; p.RatioMatched != 0.8 || p.RatioOneToOne != 0.4 || p.CPURatio != 2 {
		t.Fatalf("bench ratios %v %v %v, want 0.8 0.4 2", p.RatioMatched, p.RatioOneToOne, p.CPURatio)
	}
	r.judge()
	want := []struct {
		prefix string
		met    bool
		margin float64
	}{
		{"enforcer / matched passthrough, deploy", true, 0},               // 0.8 >= 0.8: at the limit
		{"enforcer / matched passthrough, bench", false, -0.1},            // 0.8 < 0.9
		{"CPU per event enforcer / matched passthrough, deploy", true, 0}, // 1.5 <= 1.5
		{"CPU per event enforcer / matched passthrough, bench", false, -0.5},
		{"p99 enforcer / passthrough", true, 0},     // 30/20 = 1.5
		{"withdrawal-to-enforcement p99", false, 0}, // 200 is not < 200
		{"enforcer peak RSS", false, -44},           // the larger enforcer counts, not the broker
	}
	if len(r.Targets) != len(want) {
		t.Fatalf("%d targets, want %d: %+v", len(r.Targets), len(want), r.Targets)
	}
	for i, w := range want {
		got := r.Targets[i]
		if !strings.HasPrefix(got.Name, w.prefix) || got.Met != w.met || math.Abs(got.Margin-w.margin) > 1e-9 {
			t.Errorf("target %d = %q met %v margin %v, want %q met %v margin %v", i, got.Name, got.Met, got.Margin, w.prefix, w.met, w.margin)
		}
		line := got.line()
		if mark := map[bool]string{true: "MET", false: "MISSED"}[w.met]; !strings.HasPrefix(line, mark) {
			t.Errorf("line %q does not start with %s", line, mark)
		}
	}

	// Nothing measured: nothing met.
	empty := &results{Policies: []*policyResult{{Label: "bench"}, {Label: "deploy"}}, PeakRSSMiB: map[string]float64{}}
	empty.finish()
	empty.judge()
	for _, tg := range empty.Targets {
		if tg.Met {
			t.Errorf("target %q met without figures", tg.Name)
		}
	}
	// Probes that timed out fail the withdrawal target whatever the p99.
	r.Withdrawal = withdrawalResult{Latency: percentiles{Samples: 5, P99: 10}, TimedOut: 1}
	r.judge()
	if tg := r.Targets[5]; tg.Met || !strings.Contains(tg.Note, "timed out") {
		t.Errorf("withdrawal target with a timeout: met %v, note %q", tg.Met, tg.Note)
	}
}

// TestPassthroughCopies checks that the baseline writes, over a run, the
// records per event it was given, to the topics it was given, each a copy
// of its input.
func TestPassthroughCopies(t *testing.T) {
	perTopic := map[string]float64{"a": 1, "b": 0.18065, "c": 4, "d": 0}
	pt, err := parseOutputs(outputsArg(perTopic))
	if err != nil {
		t.Fatal(err)
	}
	const events = 20000
	counts := map[string]int{}
	for done := 0; done < events; done += 500 {
		batch := make([]kafka.Message, 500)
		for i := range batch {
			batch[i] = kafka.Message{Topic: "in", Key: []byte("k"), Value: []byte{byte(i)}, Headers: []kafka.Header{{Key: "h", Value: []byte("v")}}}
		}
		out, err := pt.process(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out {
			counts[m.Topic]++
			if string(m.Key) != "k" || len(m.Headers) != 1 {
				t.Fatalf("record %+v is not a copy of its input", m)
			}
		}
	}
	for topic, r := range perTopic {
		if want := int(math.Floor(r * events)); counts[topic] != want {
			t.Errorf("%s: %d records, want %d", topic, counts[topic], want)
		}
	}
	if len(counts) != 3 {
		t.Errorf("records to %v, want only a, b and c", counts)
	}
}
