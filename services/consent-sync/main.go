// Command consent-sync applies consent changes from the consent topic (the
// system of record) to the consent state cache in Redis, and publishes
// revocation notices. See README.md at the repository root.
//
// With --rebuild it instead replays the consent topic from the beginning into
// Redis and exits (internal/rebuild). With --intake-addr it also serves an
// HTTP intake that produces consent changes to the consent topic
// (internal/intake). With CONSENT_SIGNALS_TOPIC (on by default; off: off) it also
// consumes consent signal submissions from that topic and produces the
// consent changes they make to the consent topic (internal/signalsin).
//
// Shutdown order on SIGTERM: the intake stops accepting requests and answers
// those in flight (each produced or answered 503) first; then the consumer
// stops fetching, finishes and commits its batch (and so does the signals
// consumer, whose changes are written before its commit); then the writers, the
// reader and Redis are closed. Records the intake produced just before are
// in the topic: this or the next instance applies them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/services/consent-sync/internal/apply"
	"github.com/consentgate/consentgate/services/consent-sync/internal/intake"
	"github.com/consentgate/consentgate/services/consent-sync/internal/rebuild"
	"github.com/consentgate/consentgate/services/consent-sync/internal/signalsin"
)

func main() { bootstrap.Main("consent-sync", run) }

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := DefaultConfig()
	if err := bootstrap.Parse(cfg.flags(), args, func() error { return cfg.Validate() }); err != nil {
		return err
	}
	log.Info("starting", "config", cfg)
	cfg.Kafka.Security.LogWarnings(log)

	known, pol, err := cfg.catalogue()
	if err != nil {
		return err
	}
	if cfg.Signals.Enabled() && !cfg.Rebuild {
		// Before anything connects: the signals consumer maps nothing
		// without the policy's signals section. On its default topic it is
		// then simply off; a topic set by hand is an error.
		if err := signalsin.CheckPolicy(pol); err != nil {
			if cfg.Signals.Topic != signalsin.DefaultTopic {
				return err
			}
			log.Info("the policy has no signals section: the consent signals consumer is off (" + signalsin.DefaultTopic + " is not read)")
			cfg.Signals.Topic = signalsin.Off
		}
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

	if cfg.Kafka.ClientID == "" {
		cfg.Kafka.ClientID = "consentgate-consent-sync"
	}
	if err := stream.CheckSecurity(ctx, cfg.Kafka); err != nil {
		return err
	}
	opts := apply.Options{RevocationsTopic: cfg.RevocationsTopic, DLQSuffix: cfg.DLQSuffix, KnownPurposes: known, MaxClockSkew: cfg.MaxClockSkew,
		OnUnknownPurpose: func(purpose string) {
			// Applied all the same: the topic is the record, and the
			// policy may gain the purpose later. Enforcers never read it
			// for another purpose.
			log.Warn("consent change for a purpose the policy does not declare; applied and counted", "purpose", logSafe(purpose))
		}}

	if err := checkTopics(ctx, cfg); err != nil {
		return err
	}
	if cfg.Rebuild {
		if !cfg.RebuildForce {
			exist, err := rebuild.ExistingKeys(ctx, rdb, cfg.ConsentPrefix)
			if err != nil {
				return err
			}
			if exist {
				return errors.New("redis already holds consent keys with the prefix CONSENT_KEY_PREFIX: rebuild into an empty Redis or a fresh prefix " +
					"(then point the enforcers at it), or set CONSENT_SYNC_REBUILD_FORCE=true to apply the topic over them")
			}
		}
		replay := opts
		replay.Replay = true
		w := &warmer{log: log, cfg: cfg, store: store, newReplay: func() *apply.Syncer { return apply.New(replay, codec, store) }}
		_, ok, err := w.replay(ctx, nil)
		if err == nil && !ok {
			err = errors.New("Redis restarted during the rebuild: run it again")
		}
		return err
	}

	w := stream.NewWriter(cfg.Kafka)
	defer w.Close()
	r := stream.NewReader(cfg.Kafka, cfg.Input)
	defer r.Close()

	// Crypto-shredding: an erasure marks the subject in the keys topic and
	// the shredder tombstones its data keys.
	keys := newKeyShredder(log, func(ctx context.Context) (*shred.Ring, error) {
		return shred.OpenRing(ctx, shred.RingConfig{Brokers: cfg.Kafka.Brokers, Dialer: cfg.Kafka.Security.Dialer(cfg.Kafka.ClientID),
			Transport: cfg.Kafka.Security.Transport(cfg.Kafka.ClientID), Topic: cfg.Keys.Topic, Log: log})
	})
	defer keys.Close()
	opts.Keys = keys
	if ring, err := keys.get(ctx); err != nil {
		// Erasures retry it (and wait for it): none is committed
		// before its mark is written.
		log.Warn("keys topic cannot be read yet; erasures wait for it", "error", err)
	} else if ring == nil {
		log.Info("keys topic does not exist yet: no data key exists, erasures have none to destroy (looked at again on every erasure)")
	}

	tel, stopTelemetry, err := cfg.StartTelemetry(ctx, "consent-sync", log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	tel.AddReadiness("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	tel.AddReadiness("kafka", func(ctx context.Context) error { return stream.Ping(ctx, cfg.Kafka) })
	tel.AddReadiness("keys", func(context.Context) error { return keys.Ready() })
	tel.AddReadiness("consent-state", func(ctx context.Context) error {
		need, _, err := replayDue(ctx, cfg, store)
		if err == nil && need {
			err = consent.ErrCold
		}
		return err
	})

	// The consumer runs on its own context, cancelled only once the intake
	// (if any) has shut down, so that requests in flight are answered first.
	consumeCtx, stopConsuming := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsuming()
	var srv *intake.Server
	var h *intake.Handler
	if cfg.Intake.Addr != "" {
		auth, err := intake.NewAuth(cfg.Intake)
		if err != nil {
			return fmt.Errorf("intake credentials:\n%w", err)
		}
		auth.ReloadOnSIGHUP(consumeCtx, log)
		// A Kubernetes Secret volume changes its files and sends no signal:
		// a changed file is re-read within the interval.
		auth.Watch(consumeCtx, cfg.Intake.ReloadInterval, log)
		tel.AddReadiness("intake-credentials", func(context.Context) error { return auth.Ready() })
		iopts := intake.Options{
			Topic: cfg.IntakeTopic(), MaxBodyBytes: int64(cfg.Intake.MaxBodyBytes), ProduceTimeout: cfg.Kafka.WriteTimeout, Log: log,
			Auth: auth, Purposes: known, MaxClockSkew: cfg.MaxClockSkew, Policy: pol,
		}
		if !cfg.Intake.Authenticated() {
			log.Warn("intake without authentication (CONSENT_INTAKE_INSECURE=true): anyone who reaches it can grant consent; set CONSENT_INTAKE_TOKENS_FILE or mutual TLS outside development")
		} else if auth.TLSConfig() == nil {
			log.Warn("intake bearer tokens over plain HTTP: terminate TLS in front of it, or set CONSENT_INTAKE_TLS_CERT_FILE and _KEY_FILE")
		}
		h = intake.New(iopts, codec, cfg.Kafka)
		defer h.Close()
		srv, err = intake.Start(cfg.Intake.Addr, h, auth.TLSConfig(), cfg.Kafka.WriteTimeout, log)
		if err != nil {
			return err
		}
		log.Info("intake listening", "addr", srv.Addr().String(), "path", intake.Path, "topic", cfg.IntakeTopic(),
			"tls", auth.TLSConfig() != nil, "mutual_tls", auth.MutualTLS(), "tokens", auth.Tokens(), "purposes", len(known),
			"signals_path", intake.SignalsPath, "signal_rules", signalRules(pol))
	}
	intakeDone := make(chan error, 1)
	go func() {
		var serveErr error
		if srv != nil {
			select {
			case <-ctx.Done():
			case <-consumeCtx.Done():
			case serveErr = <-srv.Err():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
			if err := srv.Shutdown(sctx); err != nil {
				serveErr = errors.Join(serveErr, fmt.Errorf("intake shutdown: %w", err))
			}
			cancel()
		} else {
			select {
			case <-ctx.Done():
			case <-consumeCtx.Done():
			}
		}
		stopConsuming()
		intakeDone <- serveErr
	}()

	replay := opts
	replay.Replay = true
	warm := &warmer{log: log, cfg: cfg, store: store, every: time.Second,
		newReplay: func() *apply.Syncer { return apply.New(replay, codec, store) }}
	go warm.run(consumeCtx)

	s := apply.New(opts, codec, store) // opts.Keys: set above
	if err := s.Observe(tel.Meter()); err != nil {
		return err
	}
	// Through s.Sink, an acknowledged revocation notice clears its outbox
	// entry; the runner commits the batch's offsets only after that.
	// advancing raises the state watermark once the batch is in Redis.
	runner, err := cfg.Runner(r, s.Sink(w), advancing(store, s.Process), log, tel)
	if err != nil {
		return err
	}
	// The signals consumer: its own group and runner on the signals
	// topic, producing with the shared writer (acks=all) to the intake's
	// topic; it stops with the consumer, and stops it when it fails.
	var sc *signalsin.Consumer
	signalsDone := make(chan error, 1)
	if !cfg.Signals.Enabled() {
		signalsDone <- nil
	} else {
		sc, err = signalsin.New(signalsin.Options{ChangesTopic: cfg.IntakeTopic(), DLQSuffix: cfg.DLQSuffix, Policy: pol,
			MaxClockSkew: cfg.MaxClockSkew, Log: log}, codec)
		if err != nil {
			return err
		}
		if err := sc.Observe(tel.Meter()); err != nil {
			return err
		}
		sr := stream.NewReader(cfg.Kafka, cfg.Signals.ReaderConfig(cfg.Input))
		defer sr.Close()
		signalsRunner := sc.NewRunner(sr, w, signalsin.RunnerSettings{BatchSize: cfg.BatchSize, Linger: cfg.Linger, DrainTimeout: cfg.DrainTimeout, Log: log})
		signalsRunner.Tracer = tel.Tracer()
		tel.AddReadiness("signals-processing", func(context.Context) error {
			if signalsRunner.Paused() {
				return errors.New("signals consumer paused, failing closed: a batch of the signals topic cannot be processed (see the logs)")
			}
			return nil
		})
		log.Info("consuming consent signals", "topic", cfg.Signals.Topic, "group_id", cfg.Signals.GroupID,
			"produces_to", cfg.IntakeTopic(), "dead_letters", cfg.Signals.Topic+cfg.DLQSuffix, "signal_rules", signalRules(pol))
		go func() {
			err := signalsRunner.Run(consumeCtx)
			if err != nil {
				err = fmt.Errorf("signals consumer: %w", err)
				stopConsuming()
			}
			signalsDone <- err
		}()
	}
	log.Info("syncing consent")
	err = runner.Run(consumeCtx)
	stopConsuming()
	err = errors.Join(err, <-intakeDone)
	err = errors.Join(err, <-signalsDone)
	attrs := []any{"records", runner.Records.Load(), "applied", s.Applied.Load(), "ignored", s.Ignored.Load(),
		"invalid", s.Invalid.Load(), "unknown_purpose", s.UnknownPurpose.Load(), "notices", s.Notices.Load(), "notice_ack_errors", s.NoticeAckErrors.Load(), "key_erasures", s.KeyErasures.Load()}
	attrs = append(attrs, "data_keys_destroyed", keys.Destroyed())
	if h != nil {
		attrs = append(attrs, "intake_accepted", h.Accepted.Load(), "intake_rejected", h.Rejected.Load(),
			"intake_unauthorized", h.Unauthorized.Load(), "intake_unavailable", h.Unavailable.Load(),
			"intake_credentials_unavailable", h.CredentialsUnavailable.Load(), "intake_clock_adjusted", h.ClockAdjusted.Load())
	}
	if sc != nil {
		attrs = append(attrs, "signal_records_decided", sc.Decided.Load(), "signal_records_ignored", sc.Ignored.Load(),
			"signal_records_dead_lettered", sc.DeadLettered.Load(), "signal_changes", sc.Changes.Load(), "signal_clock_adjusted", sc.ClockAdjusted.Load())
	}
	log.Info("stopped", attrs...)
	return err
}

// signalRules is the number of signal rules of the policy (0 without one):
// the signals intake answers 404 when it is 0.
func signalRules(pol *policy.Policy) int {
	if pol == nil {
		return 0
	}
	return len(pol.Signals.Rules)
}
