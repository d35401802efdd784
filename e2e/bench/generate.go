package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/eventgen"
)

// generator builds the realistic event mix of pkg/eventgen (as the dev
// stack's demo producer does): page views in two schema versions (30 %
// each), purchases with health-related items now and then (25 %) and e-mail
// engagements (15 %), spread uniformly over a population of subjects. It is
// deterministic for a seed apart from timestamps.
type generator struct {
	rng      *rand.Rand
	cat      *avrocodec.Catalog
	subjects int
	seq      int64
}

func newGenerator(seed uint64, cat *avrocodec.Catalog, subjects int) *generator {
	return &generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), cat: cat, subjects: subjects}
}

// subjectID is the id of subject number i of the seeded population.
func subjectID(i int) string { return fmt.Sprintf("cust-%07d", i) }

// message returns one encoded input event (single-object framing, keyed by
// subject) for a random subject of the population.
func (g *generator) message(topic string) (kafka.Message, error) {
	return g.messageFor(topic, subjectID(g.rng.IntN(g.subjects)))
}

// messageFor returns one encoded input event about subject.
func (g *generator) messageFor(topic, subject string) (kafka.Message, error) {
	g.seq++
	name, version, v := eventgen.Event(g.rng, fmt.Sprintf("evt-bench-%09d", g.seq), subject)
	s, ok := g.cat.Version(name, version)
	if !ok {
		return kafka.Message{}, fmt.Errorf("no schema %s v%d in the catalog", name, version)
	}
	b, err := s.EncodeSingle(v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode %s v%d: %w", name, version, err)
	}
	return kafka.Message{Topic: topic, Key: []byte(subject), Value: b}, nil
}
