// Command enforcer consumes customer events, checks each subject's consent in
// Redis against the policy, and publishes what is allowed to per-purpose
// compliant streams, one audit record per input event (listing every
// stream's decision), and what cannot be decided to the dead-letter topic
// (with an audit record too). See README.md at the repository root.
//
// Two offline subcommands help write and debug the policy: "enforcer check
// POLICY_FILE" validates it, and "enforcer explain --policy FILE --event
// EVENT.json --consent CONSENT.json" says what the enforcer does with one
// event, for a consent state or for consent signals (--tcf, --gpp, --usp,
// --gpc, --consent-mode; see package internal/explain, and --help of each).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/pkg/telemetry"
	"github.com/consentgate/consentgate/pkg/topicread"
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
	"github.com/consentgate/consentgate/services/enforcer/internal/explain"
)

func main() {
	// Offline subcommands: no Kafka, no Redis, their own flags and exit codes.
	if len(os.Args) > 1 {
		stdio := explain.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		switch os.Args[1] {
		case "check":
			os.Exit(explain.RunCheck(os.Args[2:], os.Getenv, stdio))
		case "explain":
			os.Exit(explain.RunExplain(os.Args[2:], os.Getenv, stdio))
		}
	}
	bootstrap.Main("enforcer", run)
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := DefaultConfig()
	if err := bootstrap.Parse(cfg.flags(), args, func() error { return cfg.Validate() }); err != nil {
		return err
	}
	log.Info("starting", "config", cfg)
	cfg.Kafka.Security.LogWarnings(log)

	if cfg.Kafka.ClientID == "" {
		cfg.Kafka.ClientID = "consentgate-enforcer"
	}
	if err := stream.CheckSecurity(ctx, cfg.Kafka); err != nil {
		return err
	}

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
	tel, stopTelemetry, err := cfg.StartTelemetry(ctx, "enforcer", log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	rdb, err := redisconn.Open(ctx, cfg.Redis)
	if err != nil {
		return fmt.Errorf("connect to redis (REDIS_ADDR/REDIS_URL): %w", err)
	}
	defer rdb.Close()
	tel.AddReadiness("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	store := consent.NewStore(rdb, cfg.ConsentPrefix)
	if cfg.RequireWarm {
		fresh := consent.NewFreshness(freshnessMaxAge)
		store.RequireFresh(fresh)
		fctx, stopFresh := context.WithCancel(context.WithoutCancel(ctx))
		defer stopFresh()
		go refreshCommitted(fctx, log, cfg, fresh)
	}
	var keys enforce.KeySource
	if pol.Encrypts() {
		ring, err := openKeys(ctx, log, cfg)
		if err != nil {
			return err
		}
		defer ring.Close()
		tel.AddReadiness("keys", func(context.Context) error { return ring.Ready() })
		keys = ringKeys{ring}
	}
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
		if err := observeCache(tel.Meter(), cache); err != nil {
			return err
		}
		tel.AddReadiness("consent-cache", func(context.Context) error {
			if !cache.Live() {
				return errors.New("invalidation subscription down: consent is read from Redis for every batch")
			}
			return nil
		})
	}

	w := stream.NewWriter(cfg.Kafka)
	defer w.Close()
	r := stream.NewReader(cfg.Kafka, cfg.Input)
	defer r.Close() // closes before the writer: leaves the group first

	tel.AddReadiness("kafka", func(ctx context.Context) error { return stream.Ping(ctx, cfg.Kafka) })

	e := enforce.New(enforce.Options{AuditTopic: cfg.AuditTopic, DLQSuffix: cfg.DLQSuffix, Redactor: red, Keys: keys, Tracer: tel.Tracer(), Log: log, Workers: cfg.Workers}, codec, lookup, pol)
	if err := e.Observe(tel.Meter()); err != nil {
		return err
	}
	runner, err := cfg.Runner(r, w, e.Process, log, tel)
	if err != nil {
		return err
	}
	e.Attach(runner) // audit records last, amended when an output could never be written
	log.Info("enforcing", "streams", len(pol.Streams), "policy_version", pol.Version)
	err = runner.Run(ctx)
	log.Info("stopped", "records", runner.Records.Load(), "passed", e.Passed.Load(), "redacted", e.Redacted.Load(),
		"dropped", e.Dropped.Load(), "dead_lettered", e.DeadLettered.Load(), "retries", runner.Retries.Load())
	return err
}

// openKeys opens the keys topic of a policy that encrypts and reads it to
// its end, so that the subjects' existing data keys are known before the
// first batch.
func openKeys(ctx context.Context, log *slog.Logger, cfg Config) (*shred.Ring, error) {
	if err := cfg.Keys.Validate(true); err != nil {
		return nil, err
	}
	kek, err := cfg.Keys.LoadKEK()
	if err != nil {
		return nil, err
	}
	ring, err := shred.OpenRing(ctx, shred.RingConfig{Brokers: cfg.Kafka.Brokers, Dialer: cfg.Kafka.Security.Dialer(cfg.Kafka.ClientID),
		Transport: cfg.Kafka.Security.Transport(cfg.Kafka.ClientID), Topic: cfg.Keys.Topic, KEK: kek, RotateAfter: cfg.Keys.RotateAfter, Log: log})
	if errors.Is(err, topicread.ErrNoTopic) {
		return nil, fmt.Errorf("the policy encrypts fields, but the keys topic %s does not exist: create it, compacted (provision apply does), or set KEYS_TOPIC", cfg.Keys.Topic)
	}
	if err != nil {
		return nil, err
	}
	log.Info("reading the keys topic", "topic", cfg.Keys.Topic)
	if err := ring.WaitCaughtUp(ctx); err != nil {
		ring.Close()
		return nil, fmt.Errorf("read the keys topic %s: %w", cfg.Keys.Topic, err)
	}
	if err := ring.CheckKEK(); err != nil {
		ring.Close()
		return nil, err
	}
	return ring, nil
}

// ringKeys gives the enforcer the ring's data keys.
type ringKeys struct{ r *shred.Ring }

func (k ringKeys) Encrypters(ctx context.Context, want map[string]shred.Erasure) (map[string]redact.Encrypter, error) {
	m, err := k.r.KeysKnowing(ctx, want)
	if err != nil {
		return nil, err
	}
	out := make(map[string]redact.Encrypter, len(m))
	for s, dk := range m {
		out[s] = dk
	}
	return out, nil
}

// newRedactor builds the redactor with the configured pseudonymisation key.
// Every pseudonym comes from that key, stable across restarts and instances
// so that pseudonyms join; there is no random or default key. A policy that
// can make a pseudonym (a pseudonymise treatment, or any rewriting one,
// which pseudonymises the keys of a map it applies to: redact.NeedsKey)
// does not start without a key. One that only keeps and removes gets a
// redactor without a key.
func newRedactor(cfg Config, pol *policy.Policy) (*redact.Redactor, error) {
	key, err := cfg.pseudonymKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		if redact.NeedsKey(pol) {
			return nil, errors.New("the policy can pseudonymise (a pseudonymise treatment, or mask, truncate_ip or generalise, which pseudonymise the keys of a map): set PSEUDONYMISATION_KEY_FILE (or PSEUDONYMISATION_KEY) to a secret of at least 16 bytes, the same for every enforcer")
		}
		return redact.NewWithoutKey(), nil
	}
	r, err := redact.New(key)
	if err != nil {
		return nil, fmt.Errorf("pseudonymisation key: %w: set PSEUDONYMISATION_KEY_FILE to at least %d bytes", err, redact.MinKeyLen)
	}
	return r, nil
}

// observeCache exports the consent cache's counters: lookups served from
// memory (local_hit) and read from Redis (miss), and invalidations.
func observeCache(m metric.Meter, c *consent.Cache) error {
	lookups, err := m.Int64ObservableCounter(telemetry.MetricLookups+".subjects", metric.WithDescription("subjects looked up, by result (local_hit, miss)"))
	if err != nil {
		return err
	}
	inval, err := m.Int64ObservableCounter("consentgate.consent.cache.invalidations", metric.WithDescription("cached subjects dropped by an invalidation"))
	if err != nil {
		return err
	}
	size, err := m.Int64ObservableGauge("consentgate.consent.cache.size", metric.WithDescription("subjects held in the local consent cache"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(lookups, c.Hits.Load(), metric.WithAttributes(attribute.String("result", "local_hit")))
		o.ObserveInt64(lookups, c.Misses.Load(), metric.WithAttributes(attribute.String("result", "miss")))
		o.ObserveInt64(inval, c.Invalidations.Load())
		o.ObserveInt64(size, int64(c.Len()))
		return nil
	}, lookups, inval, size)
	return err
}
