package main

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/stream"
)

// baselinePrefix names the passthrough's output topics: the enforcer's topic
// t becomes baselinePrefix+t.
const baselinePrefix = "bench.baseline."

// passthrough is the baseline: a plain consume → produce copy with the
// enforcer's Kafka plumbing (stream.NewReader, stream.NewWriter with
// acks=all, stream.Runner with the same batch size, linger and
// commit-after-acknowledge discipline) and no consent work. For every input
// event it writes as many records, to as many topics, as the enforcer wrote
// on average: perTopic[t] records per input event to baselinePrefix+t, each
// a copy of the input (key, value, headers).
type passthrough struct {
	perTopic map[string]float64 // records per input event, by enforcer topic
	topics   []string           // keys of perTopic, in a fixed order
	seen     int64              // input events processed so far
}

// process is the stream.Processor of the baseline. Event i gets
// floor((i+1)·r) − floor(i·r) copies per topic of rate r, so that the
// totals match the enforcer's over the whole input.
func (p *passthrough) process(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	out := make([]kafka.Message, 0, len(batch)*4)
	for _, m := range batch {
		i := float64(p.seen)
		p.seen++
		for _, t := range p.topics {
			r := p.perTopic[t]
			for range int(math.Floor((i+1)*r) - math.Floor(i*r)) {
				out = append(out, kafka.Message{Topic: baselinePrefix + t, Key: m.Key, Value: m.Value, Headers: m.Headers})
			}
		}
	}
	return out, nil
}

// runBaseline runs the passthrough in this process until ctx ends, in its
// own consumer group over the input topic, and returns when it stopped.
func runBaseline(ctx context.Context, kcfg stream.Config, group, input string, pt *passthrough, log *slog.Logger) error {
	w := stream.NewWriter(kcfg)
	defer w.Close()
	r := stream.NewReader(kcfg, stream.ReaderConfig{
		Topics: []string{input}, GroupID: group,
		// The enforcer's defaults (bootstrap.DefaultCommon).
		MaxWait: 250 * time.Millisecond, SessionTimeout: 10 * time.Second, FromBeginning: true,
	})
	defer r.Close()
	runner := &stream.Runner{
		Source: r, Sink: w, Process: pt.process,
		BatchSize: 500, Linger: 5 * time.Millisecond, DrainTimeout: 20 * time.Second, Log: log,
	}
	return runner.Run(ctx)
}
