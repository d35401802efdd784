package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/consentgate/consentgate/pkg/eventgen"
)

// demo produces a realistic mix of customer events and consent changes for a
// fixed population of subjects. It is deterministic for a given seed apart
// from timestamps.
type demo struct {
	rng      *rand.Rand
	subjects int
	purposes []string
	seq      int64
	runID    string
}

func newDemo(seed uint64, subjects int, purposes []string) *demo {
	return &demo{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		subjects: subjects,
		purposes: purposes,
		runID:    fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff),
	}
}

func (d *demo) subject() string { return fmt.Sprintf("cust-%05d", d.rng.IntN(d.subjects)) }

func (d *demo) nextID(kind string) string {
	d.seq++
	return fmt.Sprintf("%s-%s-%08d", kind, d.runID, d.seq)
}

// change returns a consent change for subject (or a random one). Initial
// changes are grants or denials; later ones also withdraw, expire or erase.
func (d *demo) change(subject string, initial bool) map[string]any {
	if subject == "" {
		subject = d.subject()
	}
	now := time.Now()
	action := "GRANT"
	r := d.rng.Float64()
	switch {
	case initial && r < 0.45:
		action = "DENY"
	case initial:
	case r < 0.02:
		action = "ERASE"
	case r < 0.30:
		action = "WITHDRAW"
	case r < 0.40:
		action = "DENY"
	}
	var purpose any
	if action != "ERASE" {
		purpose = map[string]any{"string": d.purposes[d.rng.IntN(len(d.purposes))]}
	}
	excluded := []any{}
	var expires any
	if action == "GRANT" {
		if d.rng.Float64() < 0.15 {
			excluded = append(excluded, "user.health")
		}
		if d.rng.Float64() < 0.10 {
			expires = map[string]any{"long.timestamp-millis": now.Add(time.Duration(10+d.rng.IntN(50)) * time.Second)}
		}
	}
	sources := []string{"preference-centre", "cookie-banner", "mobile-app", "support-agent"}
	return map[string]any{
		"change_id":           d.nextID("chg"),
		"subject_id":          subject,
		"purpose":             purpose,
		"action":              action,
		"legal_basis":         "CONSENT",
		"excluded_categories": excluded,
		"source":              sources[d.rng.IntN(len(sources))],
		"notice_version":      "2026-09",
		// A little jitter in capture time, as clients' clocks and queues
		// deliver changes slightly out of order.
		"captured_at": now.Add(-time.Duration(d.rng.IntN(500)) * time.Millisecond),
		"expires_at":  expires,
	}
}

// event returns a customer event: its schema full name, version, and value.
func (d *demo) event() (string, int, map[string]any) {
	subject := d.subject()
	return eventgen.Event(d.rng, d.nextID("evt"), subject)
}
