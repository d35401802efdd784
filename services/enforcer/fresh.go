package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// The enforcer reads consent-sync's committed offsets every
// freshnessRefresh and trusts them for freshnessMaxAge; a lookup with an
// older view fails closed (consent.ErrCold). A Redis node restored to a state
// older than the committed offsets is detected by the first lookup after the
// next refresh.
const (
	freshnessRefresh = 200 * time.Millisecond
	freshnessMaxAge  = 5 * time.Second
)

// refreshCommitted keeps fresh up to date until ctx ends. Failures are
// logged once per streak, not per attempt.
func refreshCommitted(ctx context.Context, log *slog.Logger, cfg Config, fresh *consent.Freshness) {
	failing := false
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		at := time.Now()
		c, err := stream.Committed(rctx, cfg.Kafka, cfg.ConsentGroupID, cfg.ConsentTopics)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fresh.Set(nil, at, err)
			if !failing {
				log.Warn("cannot read consent-sync's committed offsets; enforcement pauses when the last reading is older than "+freshnessMaxAge.String(), "error", err.Error())
			}
			failing = true
		} else {
			fresh.Set(consent.OffsetsOf(c), at, nil)
			if failing {
				log.Info("reading consent-sync's committed offsets again")
			}
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(freshnessRefresh):
		}
	}
}
