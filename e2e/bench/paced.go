package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// sentHeader carries, on paced input events, the Unix nanoseconds at which
// the benchmark handed the event to the producer. The enforcer copies input
// headers to passed outputs (redacted copies keep only trace headers), so
// the latency observer finds it on every passed output.
const sentHeader = "bench.sent_unix_nano"

// pacer produces events from pool, cycling, at a fixed rate with acks=all.
type pacer struct {
	w     stream.Writer
	pool  []kafka.Message
	rate  float64 // events per second
	topic string
	sent  atomic.Int64
}

// run produces until ctx ends. Every 5 ms it writes what is due, each event
// stamped with the time of the write call; a write that takes longer is
// caught up on the next tick (at most 100 ms of backlog at once).
func (p *pacer) run(ctx context.Context) error {
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	next := 0
	maxBurst := max(1, int64(p.rate/10))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		due := int64(p.rate*time.Since(start).Seconds()) - p.sent.Load()
		if due <= 0 {
			continue
		}
		due = min(due, maxBurst)
		msgs := make([]kafka.Message, due)
		stamp := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
		for i := range msgs {
			src := p.pool[next%len(p.pool)]
			next++
			msgs[i] = kafka.Message{Topic: p.topic, Key: src.Key, Value: src.Value, Headers: []kafka.Header{{Key: sentHeader, Value: stamp}}}
		}
		if err := stream.WriteAll(ctx, p.w, msgs, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("paced produce: %w", err)
		}
		p.sent.Add(due)
	}
}

// latencyObserver reads the passed outputs and records, for each one that
// carries sentHeader, the time from the send to the moment it was read here
// (after the enforcer's write was acknowledged and the broker served it).
type latencyObserver struct {
	from time.Time // events sent earlier (warm-up) are not counted

	mu      sync.Mutex
	samples []time.Duration
}

func (o *latencyObserver) run(ctx context.Context, r *kafka.Reader) error {
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if isDone(ctx, err) {
				return nil
			}
			return fmt.Errorf("read outputs: %w", err)
		}
		now := time.Now()
		v, ok := stream.Header(m, sentHeader)
		if !ok {
			continue
		}
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		sent := time.Unix(0, ns)
		if sent.Before(o.from) {
			continue
		}
		o.mu.Lock()
		o.samples = append(o.samples, now.Sub(sent))
		o.mu.Unlock()
	}
}

func (o *latencyObserver) result() percentiles {
	o.mu.Lock()
	defer o.mu.Unlock()
	return percentilesOf(slices.Clone(o.samples))
}

// auditRow is the part of an audit record the withdrawal probes need.
type auditRow struct {
	subject, stream, decision, reason string
	processedAt                       time.Time
}

// auditWatcher reads the audit partition of the probe subjects and passes
// on the records about them (key prefix probePrefix); others are skipped
// undecoded.
type auditWatcher struct {
	codec *avrocodec.Codec
	rows  chan auditRow
}

func (a *auditWatcher) run(ctx context.Context, r *kafka.Reader) error {
	prefix := []byte(probePrefix)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if isDone(ctx, err) {
				return nil
			}
			return fmt.Errorf("read audit: %w", err)
		}
		if !bytes.HasPrefix(m.Key, prefix) {
			continue
		}
		rec, err := a.codec.Decode(ctx, m.Value)
		if err != nil {
			return fmt.Errorf("decode audit record: %w", err)
		}
		// One audit record per event (version 2): a row per stream decision.
		processedAt, _ := rec.Value["processed_at"].(time.Time)
		decisions, _ := rec.Value["decisions"].([]any)
		for _, d := range decisions {
			dm, _ := d.(map[string]any)
			row := auditRow{subject: string(m.Key), processedAt: processedAt}
			row.stream, _ = dm["stream"].(string)
			row.decision, _ = dm["decision"].(string)
			row.reason, _ = dm["reason"].(string)
			select {
			case a.rows <- row:
			default: // nobody waiting for this one; the prober skips stale rows anyway
			}
		}
	}
}

// prober measures withdrawal-to-enforcement latency under load: it takes a
// probe subject (granted every purpose), sends it an event and waits for the
// analytics decision (so that the enforcer has its consent cached), then at
// t0 produces a WITHDRAW of analytics and keeps sending events for the
// subject every 10 ms until an audit record for it on compliant.analytics
// says withdrawn. The latency is that record's processed_at − t0.
type prober struct {
	w       stream.Writer
	gen     *generator
	codec   *avrocodec.Codec
	rows    <-chan auditRow
	input   string
	changes string

	samples  []time.Duration
	failures int
}

const probeStream = "compliant.analytics"

func (p *prober) run(ctx context.Context, subjects []string) error {
	for _, s := range subjects {
		if ctx.Err() != nil {
			return nil
		}
		lat, ok, err := p.probe(ctx, s)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case ok:
			p.samples = append(p.samples, lat)
		case ctx.Err() == nil:
			p.failures++
		}
	}
	return nil
}

func (p *prober) probe(ctx context.Context, subject string) (time.Duration, bool, error) {
	// Warm: the enforcer reads (and caches) the subject's grant.
	if err := p.sendEvent(ctx, subject); err != nil {
		return 0, false, err
	}
	if _, ok := p.await(ctx, subject, func(r auditRow) bool { return r.decision == "PASSED" }, 10*time.Second, nil); !ok {
		return 0, false, nil
	}
	t0 := time.Now()
	b, err := p.codec.EncodeSingle("consentgate.consent.ConsentChange", consent.Change{
		ChangeID: "probe-withdraw-" + subject, SubjectID: subject, Purpose: "analytics", Action: consent.ActionWithdraw,
		Source: "bench-probe", CapturedAt: t0,
	}.Native())
	if err != nil {
		return 0, false, fmt.Errorf("encode withdrawal: %w", err)
	}
	if err := stream.WriteAll(ctx, p.w, []kafka.Message{{Topic: p.changes, Key: []byte(subject), Value: b}}, nil); err != nil {
		return 0, false, fmt.Errorf("produce withdrawal: %w", err)
	}
	var sendErr error
	row, ok := p.await(ctx, subject, func(r auditRow) bool { return r.reason == string(consent.ReasonWithdrawn) }, 10*time.Second, func() {
		if sendErr == nil {
			sendErr = p.sendEvent(ctx, subject)
		}
	})
	if sendErr != nil && ctx.Err() == nil {
		return 0, false, sendErr
	}
	if !ok {
		return 0, false, nil
	}
	return max(0, row.processedAt.Sub(t0)), true, nil
}

// await waits until an audit row for subject on the probe stream satisfies
// match, calling every (if not nil) every 10 ms meanwhile.
func (p *prober) await(ctx context.Context, subject string, match func(auditRow) bool, timeout time.Duration, every func()) (auditRow, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	if every != nil {
		every()
	}
	for {
		select {
		case <-ctx.Done():
			return auditRow{}, false
		case <-deadline.C:
			return auditRow{}, false
		case <-tick.C:
			if every != nil {
				every()
			}
		case r := <-p.rows:
			if r.subject == subject && r.stream == probeStream && match(r) {
				return r, true
			}
		}
	}
}

func (p *prober) sendEvent(ctx context.Context, subject string) error {
	m, err := p.gen.messageFor(p.input, subject)
	if err != nil {
		return err
	}
	if err := stream.WriteAll(ctx, p.w, []kafka.Message{m}, nil); err != nil {
		return fmt.Errorf("produce probe event: %w", err)
	}
	return nil
}
