package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/consentgate/consentgate/pkg/telemetry"
)

// Observer is told what a Runner does, for metrics. telemetry.RunnerMetrics
// fits it.
type Observer interface {
	Fetched(ctx context.Context, batch []kafka.Message)
	Committed(ctx context.Context, batch, out []kafka.Message, fetchedAt time.Time)
	Retried(ctx context.Context, stage string)
	Paused(ctx context.Context, paused bool)
}

// Source is the consumer side of Kafka: kafka.Reader fits it.
type Source interface {
	Fetcher
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Processor turns a batch of input records into the records to write for
// them (outputs, audit records, dead letters, notices). It returns an error,
// and nothing, when a transient failure leaves any record of the batch
// undecided; the runner then retries the whole batch after a backoff.
// Permanent problems with a record must become records (dead letters), not
// errors, or the batch is retried forever.
type Processor func(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error)

// Runner is the one place that orders work and commits offsets: it fetches a
// batch, has it processed, writes every resulting record with acks=all
// (retrying only what failed), and only then commits the batch's offsets.
// A batch whose records are not all acknowledged is never committed.
type Runner struct {
	Source       Source
	Sink         Writer
	Process      Processor
	BatchSize    int
	Linger       time.Duration
	DrainTimeout time.Duration // how long in-flight work may take after ctx ends
	MaxBackoff   time.Duration
	Log          *slog.Logger
	// Observer (optional) records metrics; Tracer (optional) traces each
	// batch, linked to the trace context its records carry.
	Observer Observer
	Tracer   trace.Tracer

	// Batches and Records count committed work; Retries counts failed
	// attempts (processing or writing).
	Batches, Records, Retries atomic.Int64

	paused atomic.Bool
}

// Paused reports whether the runner is retrying a batch it could not
// process (failing closed): a readiness check turns false on it.
func (r *Runner) Paused() bool { return r.paused.Load() }

// Run processes batches until ctx ends. The batch in hand when ctx ends is
// finished and committed (within DrainTimeout) before Run returns nil.
func (r *Runner) Run(ctx context.Context) error {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(r.DrainTimeout, cancel) })
	defer stop()
	for {
		batch, err := FetchBatch(ctx, r.Source, r.BatchSize, r.Linger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch: %w", err)
		}
		if err := r.handle(pctx, batch); err != nil {
			return err
		}
	}
}

func (r *Runner) handle(ctx context.Context, batch []kafka.Message) error {
	fetchedAt := time.Now()
	obs := r.Observer
	if obs == nil {
		obs = noObserver{}
	}
	tracer := r.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	links := make([]trace.Link, 0, len(batch))
	for _, m := range batch {
		if sc := trace.SpanContextFromContext(telemetry.Extract(ctx, m.Headers)); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := tracer.Start(ctx, "process batch", trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(batch))))
	defer span.End()
	obs.Fetched(ctx, batch)

	backoff := 100 * time.Millisecond
	maxBackoff := r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	defer func() {
		if r.paused.Swap(false) {
			obs.Paused(ctx, false)
		}
	}()
	for {
		out, err := r.Process(ctx, batch)
		if err == nil {
			err = WriteAll(ctx, r.Sink, out, func(n int, err error) {
				r.Retries.Add(1)
				obs.Retried(ctx, "write")
				r.Log.WarnContext(ctx, "produce failed, retrying the unacknowledged records", "records", n, "error", err.Error())
			})
			if err != nil {
				span.SetStatus(codes.Error, "write failed")
				return fmt.Errorf("write batch: %w; its offsets stay uncommitted", err)
			}
			if err := r.Source.CommitMessages(ctx, batch...); err != nil {
				span.SetStatus(codes.Error, "commit failed")
				return fmt.Errorf("commit offsets: %w", err)
			}
			r.Batches.Add(1)
			r.Records.Add(int64(len(batch)))
			obs.Committed(ctx, batch, out, fetchedAt)
			return nil
		}
		r.Retries.Add(1)
		obs.Retried(ctx, "process")
		if !r.paused.Swap(true) {
			obs.Paused(ctx, true)
		}
		span.AddEvent("paused, failing closed")
		r.Log.WarnContext(ctx, "batch not processed, pausing before retry (fail closed)", "records", len(batch), "backoff", backoff.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			span.SetStatus(codes.Error, "stopped while paused")
			return fmt.Errorf("stopped with an unprocessed batch, left uncommitted: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

type noObserver struct{}

func (noObserver) Fetched(context.Context, []kafka.Message)                               {}
func (noObserver) Committed(context.Context, []kafka.Message, []kafka.Message, time.Time) {}
func (noObserver) Retried(context.Context, string)                                        {}
func (noObserver) Paused(context.Context, bool)                                           {}
