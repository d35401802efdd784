package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/services/consent-sync/internal/apply"
	"github.com/consentgate/consentgate/services/consent-sync/internal/rebuild"
)

// warmer keeps Redis holding the state of the whole consent topic. Redis is
// a cache that can go back in time (an empty restart, a restore from an old
// snapshot, a failover to a lagging replica, one cluster shard losing its
// data): every second it compares each Redis node's state watermark
// (consent.Store.Watermarks) with the offsets this service's consumer group
// has committed. When a node is behind, enforcers pause (consent.ErrCold)
// and the warmer replays the topic from the lowest watermark (from the
// beginning for a node that has none) up to the end it sees at the start of
// the replay, then sets the watermark so that they resume. The live
// consumer keeps applying new changes meanwhile; the compare-and-set makes
// the two orders agree.
type warmer struct {
	log   *slog.Logger
	cfg   Config
	store *consent.Store
	// newReplay returns a Syncer in replay mode (no notices, no dead
	// letters: those were written when the changes were first consumed).
	newReplay func() *apply.Syncer
	every     time.Duration
	// beforeReplay, when set (tests), runs after check decided to replay.
	beforeReplay func()
}

// committed returns the consumer group's committed offsets on the consent
// topics (-1 where nothing is committed).
func committedOffsets(ctx context.Context, cfg Config) (consent.Offsets, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := stream.Committed(ctx, cfg.Kafka, cfg.Input.GroupID, cfg.Input.Topics)
	if err != nil {
		return nil, err
	}
	return consent.OffsetsOf(c), nil
}

// behind reports whether some node must be replayed, and from where: per
// partition the lowest watermark of the nodes (0 for a node without one). A
// node whose server restarted or failed over since its watermark was set
// (consent.NodeWatermark.Restarted) is replayed from its watermark even when
// that is not below the committed offsets: it may have lost acknowledged
// writes after it, and its watermark does not rise again until a replay.
func behind(nodes []consent.NodeWatermark, committed consent.Offsets) (bool, map[consent.TopicPartition]int64) {
	need := false
	from := map[consent.TopicPartition]int64{}
	for tp := range committed {
		from[tp] = -1
	}
	for _, n := range nodes {
		if !n.Valid || n.Restarted() || len(n.Behind(committed)) > 0 {
			need = true
		}
		for tp := range committed {
			w := int64(0)
			if n.Valid {
				w = n.W[tp]
			}
			if from[tp] < 0 || w < from[tp] {
				from[tp] = w
			}
		}
	}
	return need, from
}

// replay replays the topic, from the beginning when committed is nil, else
// from the lowest watermark, and sets the watermark, unless a node restarted
// or failed over meanwhile. The watermarks to replay from are read after
// BeginReplay: one read before could be from a run of a server that has
// since come back from an older snapshot, with a lower watermark.
func (w *warmer) replay(ctx context.Context, committed consent.Offsets) (rebuild.Summary, bool, error) {
	token, err := w.store.BeginReplay(ctx)
	if err != nil {
		return rebuild.Summary{}, false, err
	}
	var from map[consent.TopicPartition]int64
	if committed != nil {
		nodes, err := w.store.Watermarks(ctx)
		if err != nil {
			return rebuild.Summary{}, false, err
		}
		_, from = behind(nodes, committed)
	}
	s := w.newReplay()
	opts := rebuild.Options{Kafka: w.cfg.Kafka, Topics: w.cfg.Input.Topics, BatchSize: w.cfg.BatchSize}
	if from != nil {
		opts.From = func(topic string, partition int) int64 {
			return from[consent.TopicPartition{Topic: topic, Partition: partition}]
		}
	}
	sum, err := rebuild.Run(ctx, w.log, opts, s.Process,
		rebuild.Counters{Applied: &s.Applied, Ignored: &s.Ignored, Invalid: &s.Invalid, UnknownPurpose: &s.UnknownPurpose})
	if err != nil {
		return sum, false, err
	}
	ok, err := w.store.SetWatermark(ctx, token, sum.Ends)
	return sum, ok, err
}

// replayDue reads the committed offsets and the watermarks and reports
// whether some node must be replayed.
func replayDue(ctx context.Context, cfg Config, store *consent.Store) (bool, consent.Offsets, error) {
	committed, err := committedOffsets(ctx, cfg)
	if err != nil {
		return false, nil, fmt.Errorf("read the committed offsets of the consent topics: %w", err)
	}
	nodes, err := store.Watermarks(ctx)
	if err != nil {
		return false, nil, err
	}
	need, _ := behind(nodes, committed)
	return need, committed, nil
}

// check compares the watermarks with the committed offsets once, replaying
// when a node is behind.
func (w *warmer) check(ctx context.Context) error {
	need, committed, err := replayDue(ctx, w.cfg, w.store)
	if err != nil || !need {
		return err
	}
	if w.beforeReplay != nil {
		w.beforeReplay()
	}
	w.log.Warn("a Redis node's consent state is behind the consent topic (restarted empty or from an old snapshot, failed over, or never filled): replaying the topic; enforcers pause until it is done")
	from := committed
	for {
		sum, ok, err := w.replay(ctx, from)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("replay of the consent topic: %w", err)
		case !ok:
			w.log.Warn("a Redis node restarted or failed over during the replay; replaying again from the beginning")
			from = nil
			continue
		}
		w.log.Info("consent state replayed from the topic and the watermark set; enforcers resume", "summary", sum)
		return nil
	}
}

// run checks every w.every until ctx ends.
func (w *warmer) run(ctx context.Context) {
	for {
		if err := w.check(ctx); err != nil && ctx.Err() == nil {
			w.log.Error("checking the consent state against the consent topic failed; retrying", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.every):
		}
	}
}

// advancing wraps the live Syncer's Process: once a batch's changes are in
// Redis, and before the runner commits its offsets, it raises the state
// watermark over the batch's offsets.
func advancing(store *consent.Store, process func(context.Context, []kafka.Message) ([]kafka.Message, error)) func(context.Context, []kafka.Message) ([]kafka.Message, error) {
	return func(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
		out, err := process(ctx, batch)
		if err != nil {
			return nil, err
		}
		ranges := consent.BatchRanges(func(i int) (string, int, int64) { return batch[i].Topic, batch[i].Partition, batch[i].Offset }, len(batch))
		if err := store.Advance(ctx, ranges); err != nil {
			return nil, err
		}
		return out, nil
	}
}

// checkTopics refuses consent topics the brokers may delete records from:
// the topic is the system of record, and a replay from it must find every
// change ever made.
func checkTopics(ctx context.Context, cfg Config) error {
	if cfg.AllowTopicRetention {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	for _, t := range cfg.Input.Topics {
		if err := stream.CheckKeptForever(ctx, cfg.Kafka, t); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w\nthe consent topic is the system of record and must keep every change: set cleanup.policy=delete, retention.ms=-1 and retention.bytes=-1 on it "+
			"(kafka-configs --alter --entity-type topics --entity-name <topic> --add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete), "+
			"or set CONSENT_SYNC_ALLOW_TOPIC_RETENTION=true if you keep the changes elsewhere and accept that a replay may miss them", err)
	}
	return nil
}
