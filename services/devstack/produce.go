package main

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// producer sends the demo's events and consent changes with acks=all.
type producer struct {
	w     *kafka.Writer
	cat   *avrocodec.Catalog
	codec *avrocodec.Codec
	demo  *demo

	built                   int64 // events built, poison included
	events, changes, poison int64
}

func newProducer(kc stream.Config, d *demo) (*producer, error) {
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	cfg := kc
	cfg.ClientID = "consentgate-demo-producer"
	return &producer{w: stream.NewWriter(cfg), cat: cat, codec: avrocodec.New(cat, nil), demo: d}, nil
}

func (p *producer) close() { p.w.Close() }

func (p *producer) encodeChange(v map[string]any) (kafka.Message, error) {
	b, err := p.codec.EncodeSingle("consentgate.consent.ConsentChange", v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode consent change: %w", err)
	}
	return kafka.Message{Topic: "consent.changes", Key: []byte(v["subject_id"].(string)), Value: b}, nil
}

// run seeds every subject with an initial choice per purpose, then produces
// at the given rates until ctx ends. Every write is acknowledged before the
// next tick, so stopping loses nothing that was reported sent.
func (p *producer) run(ctx context.Context, eventsPerSec, changesPerSec int) error {
	var seed []kafka.Message
	for _, v := range p.demo.seed() {
		m, err := p.encodeChange(v)
		if err != nil {
			return err
		}
		seed = append(seed, m)
	}
	if err := stream.WriteAll(ctx, p.w, seed, nil); err != nil {
		return fmt.Errorf("seed consent: %w", err)
	}
	p.changes += int64(len(seed))

	const ticks = 10
	tick := time.NewTicker(time.Second / ticks)
	defer tick.Stop()
	var evAcc, chAcc float64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		evAcc += float64(eventsPerSec) / ticks
		chAcc += float64(changesPerSec) / ticks
		var msgs []kafka.Message
		for ; chAcc >= 1; chAcc-- {
			m, err := p.encodeChange(p.demo.change("", false))
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		nChanges := len(msgs)
		for ; evAcc >= 1; evAcc-- {
			m, err := p.event()
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		// Write even when ctx has just ended: what was built gets sent.
		if err := stream.WriteAll(context.WithoutCancel(ctx), p.w, msgs, nil); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		p.changes += int64(nChanges)
		p.events += int64(len(msgs) - nChanges)
	}
}

// seed returns the initial consent changes: for every subject, one grant or
// denial about each purpose of the policy (never two about one purpose and
// none about another).
func (d *demo) seed() []map[string]any {
	var out []map[string]any
	for i := range d.subjects {
		for _, purpose := range d.purposes {
			v := d.change(fmt.Sprintf("cust-%05d", i), true)
			// An initial change is a grant or a denial, never an
			// erasure: it always has a purpose, drawn at random by
			// change; the seed is about this one.
			v["purpose"] = map[string]any{"string": purpose}
			out = append(out, v)
		}
	}
	return out
}

func (p *producer) event() (kafka.Message, error) {
	p.built++
	if p.built%500 == 0 {
		// Now and then a record no schema can read, as a buggy upstream
		// would send: it must end on the dead-letter topic.
		p.poison++
		return kafka.Message{Topic: "customer.events", Key: []byte("poison"), Value: []byte("\xc3\x01not avro at all")}, nil
	}
	name, version, v := p.demo.event()
	s, ok := p.cat.Version(name, version)
	if !ok {
		return kafka.Message{}, fmt.Errorf("no schema %s v%d", name, version)
	}
	b, err := s.EncodeSingle(v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode %s v%d: %w", name, version, err)
	}
	return kafka.Message{Topic: "customer.events", Key: []byte(v["subject_id"].(string)), Value: b}, nil
}
