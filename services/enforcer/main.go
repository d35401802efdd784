// Command enforcer consumes customer events, checks each subject's consent in
// Redis against the policy, and publishes what is allowed to per-purpose
// compliant streams, one audit record per event and stream, and what cannot
// be decoded to the dead-letter topic. See README.md at the repository root.
package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
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
		cfg.Kafka.ClientID = "consentgate-enforcer"
	}
	w := stream.NewWriter(cfg.Kafka)
	defer w.Close()
	r := stream.NewReader(cfg.Kafka, cfg.Input)
	defer r.Close() // closes before the writer: leaves the group first

	e := enforce.New(enforce.Options{AuditTopic: cfg.AuditTopic, DLQSuffix: cfg.DLQSuffix}, codec, store, pol)
	runner := cfg.Runner(r, w, e.Process, log)
	log.Info("enforcing", "streams", len(pol.Streams), "policy_version", pol.Version)
	err = runner.Run(ctx)
	log.Info("stopped", "records", runner.Records.Load(), "passed", e.Passed.Load(),
		"dropped", e.Dropped.Load(), "dead_lettered", e.DeadLettered.Load(), "retries", runner.Retries.Load())
	return err
}
