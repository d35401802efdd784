// Command ledger consumes the pipeline's evidence topics (consent changes,
// audit records, revocation notices, dead letters, audit checkpoints) into
// the compliance ledger, a relational database that consentctl and the
// console query: SQLite by default (LEDGER_DSN=sqlite:<file>, nothing to
// install), PostgreSQL in production (LEDGER_DSN=postgres://…), same
// schema. Every record is written once: the consumed positions are stored
// in the same transaction as the rows, and a record already stored is left
// as it is, so a crash or a replay neither loses nor repeats a row.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/telemetry"
)

func main() { bootstrap.Main("ledger", run) }

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := DefaultConfig()
	if err := bootstrap.Parse(cfg.flags(), args, func() error { return cfg.Validate() }); err != nil {
		return err
	}
	log.Info("starting", "config", cfg)
	codec, err := cfg.Codec()
	if err != nil {
		return err
	}
	store, err := ledger.Open(ctx, cfg.DSN)
	if err != nil {
		return fmt.Errorf("open the ledger (LEDGER_DSN): %w", err)
	}
	defer store.Close()

	tel, err := telemetry.Setup(ctx, "ledger", cfg.Telemetry, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	c := &Consumer{
		Brokers: cfg.Kafka.Brokers, Topics: cfg.Topics(), Store: store,
		Decoder:   &ledger.Decoder{Codec: codec},
		BatchSize: cfg.BatchSize, Linger: cfg.Linger, Refresh: cfg.Refresh, Log: log,
	}
	tel.AddReadiness("ledger-consumer", func(context.Context) error {
		st := c.Stats()
		if st.LastError != "" && time.Since(st.LastIngest) > 30*time.Second {
			return errors.New("the consumer has not written for 30 s and is restarting: see the logs")
		}
		return nil
	})
	log.Info("consuming", "topics", len(c.Topics))
	return c.Run(ctx)
}
