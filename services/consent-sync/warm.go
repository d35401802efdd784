package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/services/consent-sync/internal/apply"
	"github.com/consentgate/consentgate/services/consent-sync/internal/rebuild"
)

// warmer keeps Redis holding the state of the whole consent topic. Redis is
// a cache: when it restarts empty (or was never filled), the warm marker is
// missing, enforcers pause (consent.ErrCold), and the warmer rebuilds the
// state from the topic, then sets the marker so that they resume. The live
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
}

// rebuildAndMark replays the topic into Redis and sets the warm marker,
// unless Redis lost the rebuild's token meanwhile (restarted again).
func (w *warmer) rebuildAndMark(ctx context.Context) (rebuild.Summary, bool, error) {
	token, err := w.store.BeginWarm(ctx)
	if err != nil {
		return rebuild.Summary{}, false, err
	}
	start := time.Now()
	s := w.newReplay()
	sum, err := rebuild.Run(ctx, w.log, rebuild.Options{Kafka: w.cfg.Kafka, Topics: w.cfg.Input.Topics, BatchSize: w.cfg.BatchSize}, s.Process,
		rebuild.Counters{Applied: &s.Applied, Ignored: &s.Ignored, Invalid: &s.Invalid, UnknownPurpose: &s.UnknownPurpose})
	if err != nil {
		return sum, false, err
	}
	ok, err := w.store.MarkWarm(ctx, token, start)
	return sum, ok, err
}

// run checks the marker every w.every until ctx ends, rebuilding when it is
// missing.
func (w *warmer) run(ctx context.Context) {
	for {
		warm, err := w.store.IsWarm(ctx)
		if err == nil && !warm {
			w.log.Warn("consent state is not in Redis (empty, restarted or never filled): rebuilding it from the topic; enforcers pause until it is done")
			sum, ok, err := w.rebuildAndMark(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				w.log.Error("rebuild of the consent state failed; retrying", "error", err.Error())
			case !ok:
				w.log.Warn("Redis lost the state during the rebuild; rebuilding again")
				continue
			default:
				w.log.Info("consent state rebuilt from the topic and marked warm; enforcers resume", "summary", sum)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.every):
		}
	}
}
