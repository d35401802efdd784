// Command enforcer consumes customer events, checks each subject's consent in
// Redis against the policy, and publishes what is allowed to per-purpose
// compliant streams, one audit record per event and stream, and what cannot
// be decoded to the dead-letter topic. See README.md at the repository root.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
)

func main() { bootstrap.Main("enforcer", run) }

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := DefaultConfig()
	if err := bootstrap.Parse(cfg.flags(), args, func() error { return cfg.Validate() }); err != nil {
		return err
	}
	log.Info("starting", "config", cfg)

	pol, err := policy.Load(cfg.Policy)
	if err != nil {
		return fmt.Errorf("load policy:\n%w", err)
	}
	red, err := newRedactor(cfg, pol)
	if err != nil {
		return err
	}
	codec, err := cfg.Codec()
	if err != nil {
		return err
	}
	rdb, err := redisconn.Open(ctx, cfg.Redis)
	if err != nil {
		return fmt.Errorf("connect to redis (REDIS_ADDR/REDIS_URL): %w", err)
	}
	defer rdb.Close()
	store := consent.NewStore(rdb, cfg.ConsentPrefix)
	var lookup enforce.ConsentReader = store
	if cfg.CacheSize > 0 {
		cache := consent.NewCache(store, rdb, cfg.CacheSize, cfg.CacheMaxAge)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cache.Start(sctx)
		cancel()
		if err != nil {
			return err
		}
		defer cache.Close()
		lookup = cache
	}

	if cfg.Kafka.ClientID == "" {
		cfg.Kafka.ClientID = "consentgate-enforcer"
	}
	w := stream.NewWriter(cfg.Kafka)
	defer w.Close()
	r := stream.NewReader(cfg.Kafka, cfg.Input)
	defer r.Close() // closes before the writer: leaves the group first

	e := enforce.New(enforce.Options{AuditTopic: cfg.AuditTopic, DLQSuffix: cfg.DLQSuffix, Redactor: red}, codec, lookup, pol)
	runner := cfg.Runner(r, w, e.Process, log)
	log.Info("enforcing", "streams", len(pol.Streams), "policy_version", pol.Version)
	err = runner.Run(ctx)
	log.Info("stopped", "records", runner.Records.Load(), "passed", e.Passed.Load(), "redacted", e.Redacted.Load(),
		"dropped", e.Dropped.Load(), "dead_lettered", e.DeadLettered.Load(), "retries", runner.Retries.Load())
	return err
}

// newRedactor builds the redactor with the configured pseudonymisation key.
// A policy that pseudonymises needs a key, stable across restarts and
// instances so that pseudonyms join; without one start-up stops. A policy
// that never pseudonymises gets a random key that nothing uses.
func newRedactor(cfg Config, pol *policy.Policy) (*redact.Redactor, error) {
	key, err := cfg.pseudonymKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		if usesPseudonymisation(pol) {
			return nil, errors.New("the policy pseudonymises fields: set PSEUDONYMISATION_KEY_FILE (or PSEUDONYMISATION_KEY) to a secret of at least 16 bytes, the same for every enforcer")
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	r, err := redact.New(key)
	if err != nil {
		return nil, fmt.Errorf("pseudonymisation key: %w: set PSEUDONYMISATION_KEY_FILE to at least %d bytes", err, redact.MinKeyLen)
	}
	return r, nil
}

func usesPseudonymisation(pol *policy.Policy) bool {
	for _, s := range pol.Streams {
		if s.DefaultTreatment == policy.ActionPseudonymise {
			return true
		}
		for _, t := range s.Treatments {
			if t.Action == policy.ActionPseudonymise {
				return true
			}
		}
	}
	return false
}
