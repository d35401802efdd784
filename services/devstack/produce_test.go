package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// TestProducerSeedsEveryPurposeOfEverySubject runs make run's producer
// against the real Kafka-protocol devbroker and reads back the seed: exactly
// one initial choice per (subject, purpose), as the demo says. (The seed used
// to draw each change's purpose at random: some pairs got two, others none.)
func TestProducerSeedsEveryPurposeOfEverySubject(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Topics: []string{"customer.events", "consent.changes"}})
	purposes := []string{"marketing", "analytics", "personalisation", "sale"}
	const subjects = 12
	kc := stream.DefaultConfig()
	kc.Brokers = []string{b.Addr}
	p, err := newProducer(kc, newDemo(42, subjects, purposes))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// No traffic after the seed: what consent.changes holds is the seed.
	if err := p.run(ctx, 0, 0); err != nil {
		t.Fatalf("run: %v", err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	changes := b.ReadAll(t, "consent.changes", 500*time.Millisecond, 20*time.Second)
	if len(changes) != subjects*len(purposes) {
		t.Fatalf("%d seed changes, want %d (%d subjects x %d purposes)", len(changes), subjects*len(purposes), subjects, len(purposes))
	}
	seen := map[string]int{}
	for _, m := range changes {
		rec, err := codec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if a := rec.Value["action"]; a != "GRANT" && a != "DENY" {
			t.Errorf("seed change with action %v, want GRANT or DENY", a)
		}
		u, _ := rec.Value["purpose"].(map[string]any)
		purpose, _ := u["string"].(string)
		seen[fmt.Sprintf("%v/%s", rec.Value["subject_id"], purpose)]++
	}
	bad := 0
	for i := range subjects {
		for _, purpose := range purposes {
			k := fmt.Sprintf("cust-%05d/%s", i, purpose)
			if seen[k] != 1 {
				bad++
				if bad <= 3 {
					t.Errorf("%s: %d seed choices, want exactly one", k, seen[k])
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d (subject, purpose) pairs have no single initial choice", bad, subjects*len(purposes))
	}
}
