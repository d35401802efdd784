// Command consent-sync applies consent changes from the consent topic (the
// system of record) to the consent state cache in Redis, and publishes
// revocation notices. See README.md at the repository root.
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
	csync "github.com/consentgate/consentgate/services/consent-sync/internal/sync"
)

func main() { bootstrap.Main("consent-sync", run) }

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := DefaultConfig()
	if err := bootstrap.Parse(cfg.flags(), args, func() error { return cfg.Validate() }); err != nil {
		return err
	}
	log.Info("starting", "config", cfg)

	var known map[string]bool
	if cfg.Policy != "" {
		pol, err := policy.Load(cfg.Policy)
		if err != nil {
			return fmt.Errorf("load policy:\n%w", err)
		}
		known = make(map[string]bool, len(pol.Purposes))
		for _, p := range pol.Purposes {
			known[p.ID] = true
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
	w := stream.NewWriter(cfg.Kafka)
	defer w.Close()
	r := stream.NewReader(cfg.Kafka, cfg.Input)
	defer r.Close()

	s := csync.New(csync.Options{RevocationsTopic: cfg.RevocationsTopic, DLQSuffix: cfg.DLQSuffix, KnownPurposes: known}, codec, store)
	runner := cfg.Runner(r, w, s.Process, log)
	log.Info("syncing consent")
	err = runner.Run(ctx)
	log.Info("stopped", "records", runner.Records.Load(), "applied", s.Applied.Load(), "ignored", s.Ignored.Load(),
		"invalid", s.Invalid.Load(), "unknown_purpose", s.UnknownPurpose.Load(), "notices", s.Notices.Load())
	return err
}
