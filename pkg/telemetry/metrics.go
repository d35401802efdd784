package telemetry

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrument names. Every label value comes from a small fixed set: topic
// and stream names, purposes, decisions, reason codes, results.
const (
	MetricRecordsIn      = "consentgate.records.in"
	MetricRecordsOut     = "consentgate.records.out"
	MetricBatchSize      = "consentgate.batch.size"
	MetricBatchDuration  = "consentgate.batch.duration"
	MetricEndToEnd       = "consentgate.end_to_end.latency"
	MetricRetries        = "consentgate.retries"
	MetricPaused         = "consentgate.paused"
	MetricDecisions      = "consentgate.decisions"
	MetricDeadLetters    = "consentgate.dead_letters"
	MetricLookups        = "consentgate.consent.lookups"
	MetricLookupDuration = "consentgate.consent.lookup.duration"
	MetricChanges        = "consentgate.consent.changes"
	MetricRevocations    = "consentgate.revocation_notices"
	MetricLag            = "consentgate.consumer.lag"
)

// RunnerMetrics records what a stream.Runner does: records in and out per
// topic, batch sizes and durations, end-to-end latency (input record time
// to acknowledged output), retries and whether the runner is paused.
type RunnerMetrics struct {
	in, out, retries metric.Int64Counter
	size             metric.Int64Histogram
	took, e2e        metric.Float64Histogram
	paused           metric.Int64UpDownCounter

	mu  sync.Mutex
	lag map[topicPartition]int64
}

type topicPartition struct {
	topic     string
	partition int
}

// NewRunnerMetrics creates the runner's instruments on m.
func NewRunnerMetrics(m metric.Meter) (*RunnerMetrics, error) {
	var r RunnerMetrics
	var err error
	if r.in, err = m.Int64Counter(MetricRecordsIn, metric.WithDescription("records consumed, by topic")); err != nil {
		return nil, err
	}
	if r.out, err = m.Int64Counter(MetricRecordsOut, metric.WithDescription("records produced and acknowledged, by topic")); err != nil {
		return nil, err
	}
	if r.retries, err = m.Int64Counter(MetricRetries, metric.WithDescription("failed attempts retried, by stage (fetch, process, write)")); err != nil {
		return nil, err
	}
	if r.size, err = m.Int64Histogram(MetricBatchSize, metric.WithDescription("records per batch"),
		metric.WithExplicitBucketBoundaries(1, 10, 50, 100, 250, 500, 1000, 5000)); err != nil {
		return nil, err
	}
	if r.took, err = m.Float64Histogram(MetricBatchDuration, metric.WithUnit("s"), metric.WithDescription("time from fetched to committed, per batch"),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)); err != nil {
		return nil, err
	}
	if r.e2e, err = m.Float64Histogram(MetricEndToEnd, metric.WithUnit("s"), metric.WithDescription("input record timestamp to acknowledged outputs"),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, err
	}
	if r.paused, err = m.Int64UpDownCounter(MetricPaused, metric.WithDescription("1 while processing is paused, failing closed")); err != nil {
		return nil, err
	}
	lag, err := m.Int64ObservableGauge(MetricLag, metric.WithDescription("records behind the end of the partition after the last committed batch, by topic and partition"))
	if err != nil {
		return nil, err
	}
	r.lag = map[topicPartition]int64{}
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for tp, n := range r.lag {
			o.ObserveInt64(lag, n, metric.WithAttributes(attribute.String("topic", tp.topic), attribute.Int("partition", tp.partition)))
		}
		return nil
	}, lag); err != nil {
		return nil, err
	}
	return &r, nil
}

// Fetched counts a batch taken from the input.
func (r *RunnerMetrics) Fetched(ctx context.Context, batch []kafka.Message) {
	r.size.Record(ctx, int64(len(batch)))
	for topic, n := range countByTopic(batch) {
		r.in.Add(ctx, n, metric.WithAttributes(attribute.String("topic", topic)))
	}
}

// Committed records a batch whose outputs were acknowledged and whose
// offsets were committed.
func (r *RunnerMetrics) Committed(ctx context.Context, batch, out []kafka.Message, fetchedAt time.Time) {
	now := time.Now()
	r.took.Record(ctx, now.Sub(fetchedAt).Seconds())
	for topic, n := range countByTopic(out) {
		r.out.Add(ctx, n, metric.WithAttributes(attribute.String("topic", topic)))
	}
	r.mu.Lock()
	for _, m := range batch {
		if !m.Time.IsZero() {
			r.e2e.Record(ctx, now.Sub(m.Time).Seconds())
		}
		if m.HighWaterMark > 0 {
			r.lag[topicPartition{m.Topic, m.Partition}] = max(0, m.HighWaterMark-m.Offset-1)
		}
	}
	r.mu.Unlock()
}

// Retried counts a failed attempt at stage ("fetch", "process" or "write").
func (r *RunnerMetrics) Retried(ctx context.Context, stage string) {
	r.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("stage", stage)))
}

// Paused records entering (true) or leaving (false) a fail-closed pause.
func (r *RunnerMetrics) Paused(ctx context.Context, paused bool) {
	if paused {
		r.paused.Add(ctx, 1)
	} else {
		r.paused.Add(ctx, -1)
	}
}

func countByTopic(msgs []kafka.Message) map[string]int64 {
	c := make(map[string]int64, 4)
	for _, m := range msgs {
		c[m.Topic]++
	}
	return c
}
