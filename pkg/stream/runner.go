package stream

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
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

// DeadLetterObserver is what an Observer may also implement to count the
// inputs the Runner dead-lettered because a record made from them could
// never be written, by reason (ReasonTooLarge, ReasonInvalid).
type DeadLetterObserver interface {
	DeadLettered(ctx context.Context, reason string, n int)
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
// errors, or the batch is retried forever. A record the processor returns
// that can never be written (too large, refused as invalid) is replaced by
// the Runner with a dead letter of its input (see Runner), unless it is
// Deferred: that stops the Runner; the processor needs nothing for that
// beyond the consentgate.source.* headers (or Runner.Origin).
type Processor func(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error)

// DefaultDepth is the number of batches a Runner writes (the first stage;
// one more may be writing its Deferred records and committing) while it
// fetches and processes the next one, when Runner.Depth is 0.
const DefaultDepth = 1

// Runner is the one place that orders work and commits offsets: it fetches a
// batch, has it processed, writes every resulting record with acks=all
// (retrying only what failed), and only then commits the batch's offsets.
// A batch whose records are not all acknowledged is never committed.
//
// Fetching and processing overlap with writing and committing: while batch
// n is written and committed (in fetch order, by a goroutine that writes
// each batch's records and one that writes its Deferred records and
// commits it), batch n+1 is fetched and processed. At most Depth processed
// batches wait for or are in the first stage (their records but the
// Deferred ones), and one more is in the second (its Deferred records and
// commit): Depth+1 batches in writing, the next waits until there is room.
// The guarantees are those of strictly sequential work:
//
//   - a batch's offsets are committed only after every record processed for
//     it is acknowledged, and batches are committed in the order they were
//     fetched;
//   - the records of batch n are all acknowledged before any record of
//     batch n+1 is written, so outputs keep their input order per key;
//     with one exception: batch n's Deferred records (and its commit) may
//     still be in flight while batch n+1's other records are written, so
//     Deferred records must go to topics of their own (the enforcer's
//     audit topic), where they keep their order among themselves;
//   - a batch whose processing fails is retried (paused, failing closed) and
//     nothing fetched after it is processed or committed meanwhile; batches
//     before it are still written and committed;
//   - a record that can never be written (larger than the writer's
//     BatchBytes or the topic's max.message.bytes, or refused by the broker
//     as invalid; see WriteEach) does not stop the runner: it is replaced by
//     a dead letter on <input topic><DLQSuffix> carrying the input record's
//     original key, value and headers, consentgate.dlq.reason (such as
//     record_too_large), consentgate.dlq.error, the topics that did not get
//     their record (consentgate.dlq.undelivered_topics), the event id and
//     the input's coordinates; one dead letter per input, however many of
//     its records were refused. When that dead letter cannot be written
//     either (or the refused record was itself a dead letter: a dead letter
//     is never dead-lettered again), a reference record without key, value
//     or input headers takes its place: coordinates, key and value sizes,
//     the value's SHA-256 and the reason; the input stays in its topic. The
//     batch's other records are written normally, and its offsets are
//     committed only once every record and every dead letter or reference
//     is acknowledged. A reference that cannot be written stops the runner.
//     Records marked Deferred (audit records) are written after the
//     others, and those of an input dead-lettered so are first rewritten
//     by Amend, so that they do not claim what was not delivered. A
//     deferred record is never dead-lettered: one that can never be
//     written stops the runner, its batch uncommitted (the input's other
//     records are already written; committing it would leave an offset
//     that no deferred record accounts for);
//   - a batch that cannot be written stops the runner: no later batch is
//     written or committed, and Run returns the error;
//   - a failed fetch (brokers unreachable, e.g. restarting) is retried with
//     backoff, logged and counted, until ctx ends;
//   - when ctx ends, the batches in hand are finished and committed (within
//     DrainTimeout) before Run returns.
type Runner struct {
	Source       Source
	Sink         Writer
	Process      Processor
	BatchSize    int
	Linger       time.Duration
	DrainTimeout time.Duration // how long in-flight work may take after ctx ends
	MaxBackoff   time.Duration
	// Depth is how many processed batches may be waiting for or in the
	// first stage of writing (one more may be in the second: its Deferred
	// records and commit) while the next is processed: 0 means
	// DefaultDepth; a negative value
	// runs fetch, process, write and commit strictly one after the other.
	Depth int
	Log   *slog.Logger
	// Observer (optional) records metrics; Tracer (optional) traces each
	// batch, linked to the trace context its records carry.
	Observer Observer
	Tracer   trace.Tracer
	// DLQSuffix names the dead-letter topic of input topic T, T+DLQSuffix,
	// for records that can never be written: DefaultDLQSuffix when empty.
	DLQSuffix string
	// Origin (optional) tells which input record a record returned by
	// Process was made from; SourceCoordinates (the consentgate.source.*
	// headers) when nil. A refused record without coordinates is tied to
	// its input through the consentgate.event_id of a record of the same
	// batch that has them (unless records of two inputs carry that id:
	// producers choose event ids); failing that, a reference record describes the
	// refused record itself (consentgate.dlq.origin=unknown).
	Origin func(kafka.Message) (Coordinates, bool)
	// Deferred (optional) marks the records written only once every other
	// record of their batch is acknowledged or replaced by a dead letter:
	// the records that say what became of their input (the enforcer's
	// audit records). A deferred record that can never be written (too
	// large for its topic, refused as invalid) stops the runner with an
	// error and its batch uncommitted: it is not replaced by a dead letter,
	// so the processor must keep it small (the enforcer bounds the ids it
	// carries). Amend (optional) rewrites the deferred records
	// of an input some of whose records can never be written, so that they
	// do not claim a delivery that did not happen; it is given the topics
	// that did not get their record, and returns the record to write
	// instead (an error stops the runner, the batch uncommitted). The
	// deferred records are tied to their inputs like the refused ones
	// (Origin, then the event id).
	Deferred func(kafka.Message) bool
	Amend    func(m kafka.Message, u Undelivered) (kafka.Message, error)

	// Batches and Records count committed work; Retries counts failed
	// attempts (fetching, processing or writing); DeadLettered counts the
	// inputs dead-lettered because a record made from them could never be
	// written.
	Batches, Records, Retries, DeadLettered atomic.Int64

	paused atomic.Bool
}

// Undelivered is what Runner.Amend is told of an input some of whose
// records can never be written (and was dead-lettered by the Runner).
type Undelivered struct {
	// Topics that did not get their record, sorted.
	Topics []string
	// Reason of the refusal: ReasonTooLarge or ReasonInvalid.
	Reason string
}

// amend rewrites, with r.Amend, the deferred records among msgs whose input
// is one of lettered.
func (r *Runner) amend(p *processed, msgs []kafka.Message, lettered []*undelivered) ([]kafka.Message, error) {
	byInput := map[int]Undelivered{}
	for _, g := range lettered {
		if g.input < 0 {
			continue
		}
		u := byInput[g.input]
		u.Reason = g.reason
		for _, tp := range g.topics {
			if !slices.Contains(u.Topics, tp) {
				u.Topics = append(u.Topics, tp)
			}
		}
		slices.Sort(u.Topics)
		byInput[g.input] = u
	}
	if len(byInput) == 0 {
		return msgs, nil
	}
	input := r.inputOf(p)
	amended := slices.Clone(msgs)
	for i, m := range msgs {
		if u, ok := byInput[input(m)]; ok {
			a, err := r.Amend(m, u)
			if err != nil {
				return nil, err
			}
			amended[i] = a
		}
	}
	return amended, nil
}

// Paused reports whether the runner is retrying a batch it could not
// process (failing closed): a readiness check turns false on it.
func (r *Runner) Paused() bool { return r.paused.Load() }

// processed is a batch with the records to write for it.
type processed struct {
	batch     []kafka.Message
	out       []kafka.Message
	fetchedAt time.Time
	ctx       context.Context // carries the batch's span
	span      trace.Span
}

// Run processes batches until ctx ends. The batches in hand when ctx ends
// are finished and committed (within DrainTimeout) before Run returns nil.
func (r *Runner) Run(ctx context.Context) error {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(r.DrainTimeout, cancel) })
	defer stop()
	if r.Depth < 0 {
		for {
			batch, err := r.fetch(ctx)
			if err != nil {
				return nil // ctx ended
			}
			p, err := r.prepare(pctx, batch)
			if err != nil {
				return err
			}
			if err := r.complete(p); err != nil {
				return err
			}
		}
	}
	depth := r.Depth
	if depth == 0 {
		depth = DefaultDepth
	}

	// A failed write or commit stops fetching and processing at once.
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	prctx, prcancel := context.WithCancel(pctx)
	defer prcancel()
	// Two stages, each one goroutine, in fetch order: the first writes a
	// batch's records but the deferred ones; the second writes those and
	// commits. Batch n+1's first records are written while batch n's
	// deferred records and commit are in flight.
	work := make(chan *processed, depth-1)
	second := make(chan *written)
	failed := make(chan struct{})
	var failOnce sync.Once
	fail := func() {
		failOnce.Do(func() {
			close(failed)
			fcancel()
			prcancel()
		})
	}
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() {
		var err error
	first:
		for p := range work {
			var w *written
			if w, err = r.writeFirst(p); err != nil {
				p.span.End()
				fail()
				break
			}
			select {
			case second <- w:
			case <-failed: // the second stage failed: not committed
				p.span.End()
				break first
			}
		}
		for p := range work { // not written, not committed
			p.span.End()
		}
		close(second)
		done1 <- err
	}()
	go func() {
		var err error
		for w := range second {
			// Every batch before w is committed: a failure of the first
			// stage (a later batch) must not cut w short, only the drain
			// timeout may. Its ctx keeps the span, not prctx's end.
			wctx, wcancel := context.WithCancel(context.WithoutCancel(w.p.ctx))
			stopw := context.AfterFunc(pctx, wcancel)
			w.p.ctx = wctx
			err = r.finish(w)
			stopw()
			wcancel()
			if err != nil {
				fail()
				break
			}
		}
		for w := range second { // not committed
			w.p.span.End()
		}
		done2 <- err
	}()
	finish := func(err error) error {
		close(work)
		err1, err2 := <-done1, <-done2
		switch {
		case err2 != nil:
			return err2
		case err1 != nil:
			return err1
		}
		return err
	}
	for {
		batch, err := r.fetch(fctx)
		if err != nil {
			return finish(nil) // ctx ended, or the writer failed
		}
		p, err := r.prepare(prctx, batch)
		if err != nil {
			return finish(err)
		}
		select {
		case work <- p:
		case <-failed:
			p.span.End()
			return finish(nil)
		}
	}
}

// fetch returns the next batch. A failed fetch (the brokers cannot be
// reached, the group cannot be joined) is retried with backoff until ctx
// ends: the reader heals by itself once the brokers are back, and nothing
// was taken from the input meanwhile. It returns an error only when ctx
// ended.
func (r *Runner) fetch(ctx context.Context) ([]kafka.Message, error) {
	backoff := 100 * time.Millisecond
	maxBackoff := r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	for {
		batch, err := FetchBatch(ctx, r.Source, r.BatchSize, r.Linger)
		if err == nil {
			return batch, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.Retries.Add(1)
		r.observer().Retried(ctx, "fetch")
		r.Log.WarnContext(ctx, "fetch failed, retrying", "backoff", backoff.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// prepare processes a batch, retrying with backoff while processing fails
// (paused, failing closed), until it succeeds or ctx ends.
func (r *Runner) prepare(ctx context.Context, batch []kafka.Message) (*processed, error) {
	fetchedAt := time.Now()
	obs := r.observer()
	tracer := r.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	var links []trace.Link
	for _, m := range batch {
		if !telemetry.HasTraceContext(m.Headers) {
			continue
		}
		if sc := trace.SpanContextFromContext(telemetry.ExtractTraceContext(ctx, m.Headers)); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := tracer.Start(ctx, "process batch", trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(batch))))
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
			return &processed{batch: batch, out: out, fetchedAt: fetchedAt, ctx: ctx, span: span}, nil
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
			span.End()
			return nil, fmt.Errorf("stopped with an unprocessed batch, left uncommitted: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// complete writes a processed batch's records and then commits its offsets.
func (r *Runner) complete(p *processed) error {
	w, err := r.writeFirst(p)
	if err != nil {
		p.span.End()
		return err
	}
	return r.finish(w)
}

// written is a batch whose records other than the deferred ones are
// written: what finish needs to write the rest and commit it.
type written struct {
	p        *processed
	out      []kafka.Message // written so far (dead letters included)
	last     []kafka.Message // the deferred records, still to write
	lettered []*undelivered
}

// onRetry returns the retry callback of the writes of p.
func (r *Runner) onRetry(p *processed) func(int, error) {
	return func(n int, err error) {
		r.Retries.Add(1)
		r.observer().Retried(p.ctx, "write")
		r.Log.WarnContext(p.ctx, "produce failed, retrying the unacknowledged records", "records", n, "error", err.Error())
	}
}

// writeFirst writes the records of p that are not deferred, replacing those
// that can never be written by dead letters. It does not end p's span.
func (r *Runner) writeFirst(p *processed) (*written, error) {
	ctx, onRetry := p.ctx, r.onRetry(p)
	// The deferred records (the audit records) go last, once it is known
	// what of the others was written, so that Amend can make them say so.
	first, last := p.out, []kafka.Message(nil)
	if r.Deferred != nil {
		first = make([]kafka.Message, 0, len(p.out))
		for _, m := range p.out {
			if r.Deferred(m) {
				last = append(last, m)
			} else {
				first = append(first, m)
			}
		}
	}
	w := &written{p: p, out: make([]kafka.Message, 0, len(p.out)), last: last}
	if len(first) == 0 {
		return w, nil
	}
	msgs := first
	rejected, err := WriteEach(ctx, r.Sink, msgs, onRetry)
	if err != nil {
		p.span.SetStatus(codes.Error, "write failed")
		return nil, fmt.Errorf("write batch: %w; its offsets stay uncommitted", err)
	}
	if len(rejected) == 0 {
		w.out = append(w.out, msgs...)
		return w, nil
	}
	letters, groups, err := r.replaceRejected(ctx, p, msgs, rejected, onRetry)
	if err != nil {
		p.span.SetStatus(codes.Error, "write failed")
		return nil, fmt.Errorf("write batch: %w; its offsets stay uncommitted", err)
	}
	w.lettered = groups
	p.span.AddEvent("records replaced by dead letters", trace.WithAttributes(attribute.Int("records", len(rejected))))
	for i, k := 0, 0; i < len(msgs); i++ {
		if k < len(rejected) && rejected[k].Index == i {
			k++
			continue
		}
		w.out = append(w.out, msgs[i])
	}
	w.out = append(w.out, letters...)
	return w, nil
}

// finish writes the deferred records of a batch whose other records
// writeFirst wrote (amended for the inputs that were dead-lettered), then
// commits its offsets, and ends its span.
func (r *Runner) finish(w *written) error {
	p := w.p
	defer p.span.End()
	ctx, obs := p.ctx, r.observer()
	out := w.out
	if msgs := w.last; len(msgs) > 0 {
		if len(w.lettered) > 0 && r.Amend != nil {
			var err error
			if msgs, err = r.amend(p, msgs, w.lettered); err != nil {
				p.span.SetStatus(codes.Error, "amend failed")
				return fmt.Errorf("amend the records of undelivered inputs: %w; the batch's offsets stay uncommitted", err)
			}
		}
		rejected, err := WriteEach(ctx, r.Sink, msgs, r.onRetry(p))
		if err != nil {
			p.span.SetStatus(codes.Error, "write failed")
			return fmt.Errorf("write batch: %w; its offsets stay uncommitted", err)
		}
		if len(rejected) > 0 {
			// A deferred record says what became of its input, whose other
			// records are written by now: a dead letter in its place would
			// commit an offset that nothing accounts for. Only a
			// misconfigured topic refuses one (the processor bounds what it
			// puts in it): stop, uncommitted, until it is fixed.
			x := rejected[0]
			p.span.SetStatus(codes.Error, "deferred record refused")
			return fmt.Errorf("write batch: %d deferred record(s) can never be written (%s on %s: %w); check that topic's max.message.bytes; "+
				"the batch's offsets stay uncommitted", len(rejected), x.Reason, msgs[x.Index].Topic, x.Err)
		}
		out = append(out, msgs...)
	}
	if err := r.commit(ctx, p.batch); err != nil {
		p.span.SetStatus(codes.Error, "commit failed")
		return fmt.Errorf("commit offsets: %w", err)
	}
	r.Batches.Add(1)
	r.Records.Add(int64(len(p.batch)))
	obs.Committed(ctx, p.batch, out, p.fetchedAt)
	return nil
}

// commit commits the batch's offsets, retrying a few times. A commit that
// keeps failing while the runner runs (typically a consumer-group rebalance:
// the partitions may already belong to another member) is given up with a
// warning: the batch's records were all acknowledged, so the only cost is
// that they are delivered again (at least once). Only a commit cut short by
// shutdown is an error.
func (r *Runner) commit(ctx context.Context, batch []kafka.Message) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.Source.CommitMessages(ctx, batch...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		r.Retries.Add(1)
		r.observer().Retried(ctx, "commit")
		if attempt == 3 {
			r.Log.WarnContext(ctx, "commit failed; the batch's records will be delivered again", "records", len(batch), "error", err.Error())
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (r *Runner) observer() Observer {
	if r.Observer == nil {
		return noObserver{}
	}
	return r.Observer
}

type noObserver struct{}

func (noObserver) Fetched(context.Context, []kafka.Message)                               {}
func (noObserver) Committed(context.Context, []kafka.Message, []kafka.Message, time.Time) {}
func (noObserver) Retried(context.Context, string)                                        {}
func (noObserver) Paused(context.Context, bool)                                           {}
