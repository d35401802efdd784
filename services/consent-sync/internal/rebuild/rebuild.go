// Package rebuild replays the consent topic from the beginning into the
// consent state cache in Redis, and stops when it has applied every record
// that was in the topic when it started.
//
// # Stop condition
//
// At start, Run asks the brokers for the first offset and the high
// watermark (the offset the next record will get) of every partition of the
// topics. That is the target: a partition is done when the record at offset
// high watermark - 1 has been applied; an empty partition (first offset =
// high watermark) is done at once. Records produced after the start are not
// waited for: the live service applies them, and the compare-and-set makes
// applying them twice harmless. Run returns when every partition is done.
//
// Partitions are read by plain partition readers, several at a time: no
// consumer group is joined and no offset is committed, so a rebuild never
// disturbs the live service's group.
//
// # Same path as the live service
//
// Each batch goes through the live service's Syncer (internal/apply) in replay mode:
// the same decoding, validation and atomic compare-and-set (newest
// captured_at wins, ties broken by change id), so the rebuilt state equals
// the live state whatever the order partitions are read in. Invalid records
// are counted, not dead-lettered again, and no revocation notice is
// published: both happened when the records were first consumed. The store
// records notice outbox entries as it does live, so that a change the live
// service has not committed yet, delivered to it again after the rebuild,
// still publishes the notice it owes.
//
// Progress is logged every few seconds and a summary at the end, with
// counts only: never a subject id.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// Processor applies a batch of consent-change records; the Process method of
// the live service's Syncer in replay mode fits it. It returns an error only for transient failures
// (the batch is then retried whole, which the compare-and-set makes
// harmless).
type Processor func(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error)

// Counters is what Run reads to report progress: the Syncer's counters.
type Counters struct {
	Applied, Ignored, Invalid, UnknownPurpose *atomic.Int64
}

// Options configure Run.
type Options struct {
	// Kafka holds the brokers and client id.
	Kafka stream.Config
	// Topics are the consent topics to replay.
	Topics []string
	// BatchSize is the most records processed per batch (default 500).
	BatchSize int
	// Parallelism is how many partitions are read at once (default 8).
	Parallelism int
	// Progress is the interval of the progress log lines (default 5s).
	Progress time.Duration
	// Idle is how long a partition may deliver nothing while it is below
	// its target before Run gives up with an error (default 60s).
	Idle time.Duration
	// MaxBackoff bounds the pause between retries of a failed batch
	// (default 5s).
	MaxBackoff time.Duration

	// From (optional) returns, per partition, the offset to replay from
	// when it is above the partition's first offset: a node whose state is
	// complete below its watermark needs only what follows.
	From func(topic string, partition int) int64

	// afterTargets, when set (tests only), runs once the targets are known.
	afterTargets func()
}

// Partition is the replay target of one topic partition: records at offsets
// First up to, not including, End (the high watermark at start).
type Partition struct {
	Topic     string
	Partition int
	First     int64
	End       int64
}

// Records is how many offsets the partition holds up to its target.
func (p Partition) Records() int64 { return max(p.End-p.First, 0) }

// Done reports whether a partition whose next offset to read is next has
// reached its target. next is the offset after the last record applied (or
// First when none was).
func (p Partition) Done(next int64) bool { return next >= p.End }

// Summary is the result of a rebuild.
type Summary struct {
	Partitions int
	// Target is the number of offsets below the high watermarks at start
	// (an upper bound of Records: a compacted topic has gaps).
	Target                                             int64
	Records, Applied, Ignored, Invalid, UnknownPurpose int64
	Duration                                           time.Duration
	// Ends are the high watermarks at start: every record below them
	// has been applied when Run returns nil.
	Ends consent.Offsets
}

// Rate is the number of records applied per second.
func (s Summary) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Records) / s.Duration.Seconds()
}

// LogValue lists the counts, for the summary log line.
func (s Summary) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("partitions", s.Partitions),
		slog.Int64("target", s.Target),
		slog.Int64("records", s.Records),
		slog.Int64("applied", s.Applied),
		slog.Int64("ignored", s.Ignored),
		slog.Int64("invalid", s.Invalid),
		slog.Int64("unknown_purpose", s.UnknownPurpose),
		slog.String("duration", s.Duration.Round(time.Millisecond).String()),
		slog.Float64("changes_per_sec", float64(int64(s.Rate()*10))/10),
	)
}

// ErrInterrupted matches the error Run returns when ctx ends before the
// rebuild is complete; the cache is then incomplete.
var ErrInterrupted = errors.New("rebuild interrupted before it was complete")

// Run replays opts.Topics from the beginning through process until every
// partition reached the high watermark it had at start (see the package
// documentation), logs progress and a summary, and returns the summary.
func Run(ctx context.Context, log *slog.Logger, opts Options, process Processor, c Counters) (Summary, error) {
	opts = opts.withDefaults()
	start := time.Now()
	parts, err := Targets(ctx, opts.Kafka, opts.Topics)
	if err != nil {
		if ctx.Err() != nil {
			return Summary{}, fmt.Errorf("%w before it started: %w", ErrInterrupted, ctx.Err())
		}
		return Summary{}, err
	}
	if opts.afterTargets != nil {
		opts.afterTargets()
	}
	if opts.From != nil {
		for i, p := range parts {
			if f := opts.From(p.Topic, p.Partition); f > p.First {
				parts[i].First = min(f, p.End)
			}
		}
	}
	sum := Summary{Partitions: len(parts), Ends: consent.Offsets{}}
	for _, p := range parts {
		sum.Ends[consent.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.End
	}
	for _, p := range parts {
		sum.Target += p.Records()
	}
	log.Info("rebuild started", "partitions", sum.Partitions, "target", sum.Target)

	var records, partsDone atomic.Int64
	snapshot := func() Summary {
		s := sum
		s.Records = records.Load()
		s.Applied, s.Ignored = c.Applied.Load(), c.Ignored.Load()
		s.Invalid, s.UnknownPurpose = c.Invalid.Load(), c.UnknownPurpose.Load()
		s.Duration = time.Since(start)
		return s
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan Partition)
	errc := make(chan error, len(parts))
	var wg sync.WaitGroup
	for range min(opts.Parallelism, max(len(parts), 1)) {
		wg.Go(func() {
			for p := range work {
				if err := replayPartition(pctx, log, opts, p, process, &records); err != nil {
					if errors.Is(err, context.Canceled) && pctx.Err() != nil {
						return // stopped because of ctx or another partition's error
					}
					errc <- err
					cancel()
					return
				}
				partsDone.Add(1)
			}
		})
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(opts.Progress)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
				s := snapshot()
				log.Info("rebuild progress", "partitions_done", partsDone.Load(), "summary", s)
			}
		}
	}()
feed:
	for _, p := range parts {
		select {
		case work <- p:
		case <-pctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	cancel()
	<-progressDone
	close(errc)

	s := snapshot()
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			return s, fmt.Errorf("%w after %d of %d records: run it again", ErrInterrupted, s.Records, s.Target)
		}
		return s, fmt.Errorf("rebuild: %w", err)
	}
	if ctx.Err() != nil {
		return s, fmt.Errorf("%w after %d of %d records: run it again", ErrInterrupted, s.Records, s.Target)
	}
	log.Info("rebuild finished", "summary", s)
	return s, nil
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 8
	}
	if o.Progress <= 0 {
		o.Progress = 5 * time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 60 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	return o
}

// Targets returns every partition of topics with its first offset and its
// high watermark now, sorted by topic and partition. A topic that does not
// exist is an error.
func Targets(ctx context.Context, kc stream.Config, topics []string) ([]Partition, error) {
	client := kc.Client()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	meta, err := client.Metadata(mctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("read topic metadata: %w", kc.Explain(ctx, err))
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	var errs []error
	found := map[string]bool{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, t.Error))
			continue
		}
		found[t.Name] = true
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	for _, t := range topics {
		if !found[t] && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("topic %s does not exist: check CONSENT_SYNC_TOPICS", t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	offs, err := client.ListOffsets(mctx, req)
	if err != nil {
		return nil, fmt.Errorf("read high watermarks: %w", err)
	}
	var parts []Partition
	for topic, ps := range offs.Topics {
		for _, p := range ps {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error))
				continue
			}
			parts = append(parts, Partition{Topic: topic, Partition: p.Partition, First: p.FirstOffset, End: p.LastOffset})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].Partition < parts[j].Partition
	})
	return parts, nil
}

// replayPartition reads p from First until it is Done, in batches.
func replayPartition(ctx context.Context, log *slog.Logger, opts Options, p Partition, process Processor, records *atomic.Int64) error {
	next := p.First
	if p.Done(next) {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       opts.Kafka.Brokers,
		Topic:         p.Topic,
		Partition:     p.Partition,
		MinBytes:      1,
		MaxBytes:      10 << 20,
		MaxWait:       500 * time.Millisecond,
		QueueCapacity: max(opts.BatchSize, 100),
		Dialer:        opts.Kafka.Dialer(), // TLS and SASL as the service's other clients
	})
	defer r.Close()
	if err := r.SetOffset(p.First); err != nil {
		return fmt.Errorf("%s/%d: seek: %w", p.Topic, p.Partition, err)
	}
	batch := make([]kafka.Message, 0, opts.BatchSize)
	for !p.Done(next) {
		batch = batch[:0]
		for len(batch) < opts.BatchSize && !p.Done(next) {
			fctx, cancel := context.WithTimeout(ctx, opts.Idle)
			m, err := r.FetchMessage(fctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%s/%d: read at offset %d (target %d): %w", p.Topic, p.Partition, next, p.End, err)
			}
			if m.Offset >= p.End {
				// Past the target (the offset before End was a gap, such
				// as a transaction marker): done.
				next = m.Offset
				break
			}
			batch = append(batch, m)
			next = m.Offset + 1
		}
		if len(batch) == 0 {
			break
		}
		if err := processRetrying(ctx, log, opts.MaxBackoff, batch, process); err != nil {
			return err
		}
		records.Add(int64(len(batch)))
	}
	return nil
}

// processRetrying applies batch, retrying transient failures (Redis down)
// with backoff until ctx ends. Nothing is returned by process in replay
// mode; anything it would return is dropped.
func processRetrying(ctx context.Context, log *slog.Logger, maxBackoff time.Duration, batch []kafka.Message, process Processor) error {
	backoff := 100 * time.Millisecond
	for {
		_, err := process(ctx, batch)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("rebuild batch not applied, pausing before retry", "records", len(batch), "backoff", backoff.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// ExistingKeys reports whether Redis holds consent state under prefix: a
// watermark hash of the prefix on any node ([consent.Store.HasWatermark]),
// which consent-sync writes with every batch it applies and at the start of
// every replay. It does not SCAN: Redis does not filter SCAN by the ACL
// user's key patterns, so consent-sync's user has no +scan (it would list
// every key of the server, other tenants' subject ids included).
//
// Consent keys written without a watermark are not seen: those of a
// consent-sync that stopped between its very first batch and that batch's
// watermark, or written by hand.
func ExistingKeys(ctx context.Context, rdb redis.UniversalClient, prefix string) (bool, error) {
	return consent.NewStore(rdb, prefix).HasWatermark(ctx)
}
