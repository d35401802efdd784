package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// TestReviewTrafficAfterTheSeedCoversEveryPurpose (sound): the seed fix
// draws a purpose for every initial change and then overrides it; the
// changes after the seed still draw theirs at random. Against the real
// devbroker, make run's producer sends, after exactly one initial choice per
// (subject, purpose), changes about every purpose of the policy, with every
// later action (withdrawals, denials, grants, erasures) among them.
func TestReviewTrafficAfterTheSeedCoversEveryPurpose(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Topics: []string{"customer.events", "consent.changes"}})
	purposes := []string{"marketing", "analytics", "personalisation", "sale"}
	const subjects = 10
	kc := stream.DefaultConfig()
	kc.Brokers = []string{b.Addr}
	p, err := newProducer(kc, newDemo(7, subjects, purposes))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := p.run(ctx, 0, 400); err != nil {
		t.Fatalf("run: %v", err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	changes := b.ReadAll(t, "consent.changes", 500*time.Millisecond, 20*time.Second)
	seedN := subjects * len(purposes)
	if len(changes) < seedN+200 {
		t.Fatalf("%d changes, want the %d of the seed and hundreds after", len(changes), seedN)
	}
	seed := map[string]int{}
	after := map[string]int{}
	actions := map[string]int{}
	for _, m := range changes {
		rec, err := codec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := rec.Value["change_id"].(string)
		seq, err := strconv.Atoi(id[strings.LastIndex(id, "-")+1:])
		if err != nil {
			t.Fatalf("change_id %q: %v", id, err)
		}
		u, _ := rec.Value["purpose"].(map[string]any)
		purpose, _ := u["string"].(string)
		action, _ := rec.Value["action"].(string)
		if seq <= seedN {
			seed[rec.Value["subject_id"].(string)+"/"+purpose]++
			continue
		}
		actions[action]++
		if action != "ERASE" {
			after[purpose]++
		}
	}
	if len(seed) != seedN {
		t.Errorf("the seed covers %d (subject, purpose) pairs, want %d", len(seed), seedN)
	}
	for _, purpose := range purposes {
		if after[purpose] < 20 {
			t.Errorf("purpose %s: %d changes after the seed, want its share of the traffic (%v)", purpose, after[purpose], after)
		}
	}
	for _, a := range []string{"GRANT", "DENY", "WITHDRAW", "ERASE"} {
		if actions[a] == 0 {
			t.Errorf("no %s after the seed (%v)", a, actions)
		}
	}
}
