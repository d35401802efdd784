package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/schemas"
)

// TestProducesDecodableDemoTraffic runs the producer against the real
// Kafka-protocol devbroker and reads back what it wrote: every consent change
// and every event decodes with the catalog, keyed by its subject.
func TestProducesDecodableDemoTraffic(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Topics: []string{"customer.events", "consent.changes"}})
	policyFile := filepath.Join(proctest.RepoRoot(t), "deploy", "policy.yaml")
	env := map[string]string{
		"KAFKA_BROKERS": b.Addr, "POLICY_FILE": policyFile, "DEMO_SUBJECTS": "20",
		"DEMO_EVENTS_PER_SEC": "40", "DEMO_CHANGES_PER_SEC": "10", "DEMO_DURATION": "1500ms",
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := run(context.Background(), log, nil, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("run: %v", err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	ctx := context.Background()

	changes := b.ReadAll(t, "consent.changes", 500*time.Millisecond, 20*time.Second)
	// 20 subjects × 4 purposes of deploy/policy.yaml seeded, then about 10/s.
	if len(changes) < 80+5 {
		t.Fatalf("%d consent changes, want at least the 80 seeded and a few more", len(changes))
	}
	actions := map[string]int{}
	for _, m := range changes {
		rec, err := codec.Decode(ctx, m.Value)
		if err != nil {
			t.Fatalf("consent change does not decode: %v", err)
		}
		if rec.Schema.FullName != "consentgate.consent.ConsentChange" {
			t.Fatalf("consent change of schema %s", rec.Schema.FullName)
		}
		if string(m.Key) != rec.Value["subject_id"] || !strings.HasPrefix(string(m.Key), "cust-000") {
			t.Fatalf("consent change keyed %q about %v", m.Key, rec.Value["subject_id"])
		}
		actions[rec.Value["action"].(string)]++
	}
	if actions["GRANT"] == 0 || actions["DENY"] == 0 {
		t.Fatalf("actions %v: want grants and denials", actions)
	}
	events := b.ReadAll(t, "customer.events", 500*time.Millisecond, 20*time.Second)
	if len(events) < 20 {
		t.Fatalf("%d events in 1.5 s at 40/s", len(events))
	}
	kinds := map[string]int{}
	for _, m := range events {
		rec, err := codec.Decode(ctx, m.Value)
		if err != nil {
			t.Fatalf("event does not decode: %v", err)
		}
		if string(m.Key) != rec.Value["subject_id"] {
			t.Fatalf("event keyed %q about %v", m.Key, rec.Value["subject_id"])
		}
		kinds[rec.Schema.FullName]++
	}
	if len(kinds) < 2 {
		t.Fatalf("event kinds %v: want a mix", kinds)
	}
}

func TestRefusesABadConfiguration(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "DEMO_SUBJECTS": "0"}
	err := run(context.Background(), log, nil, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "POLICY_FILE is required") || !strings.Contains(err.Error(), "DEMO_SUBJECTS") {
		t.Fatalf("run = %v, want it to name POLICY_FILE and DEMO_SUBJECTS", err)
	}
}
