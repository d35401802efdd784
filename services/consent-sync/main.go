// Command consent-sync applies consent changes from the consent topic (the
// system of record) to the consent state cache in Redis, and publishes
// revocation notices. See README.md at the repository root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
	csync "github.com/consentgate/consentgate/services/consent-sync/internal/sync"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "consent-sync")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, log, os.Args[1:])
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		log.Error("consent-sync stopped", "error", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := DefaultConfig()
	set := cfg.flags()
	perr := set.Parse(args, os.Getenv)
	if errors.Is(perr, flag.ErrHelp) {
		set.PrintUsage(os.Stdout)
		return perr
	}
	if err := errors.Join(perr, cfg.Validate()); err != nil {
		return fmt.Errorf("bad configuration (see --help):\n%w", err)
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
	var schemaFS fs.FS = schemas.FS
	if cfg.SchemasDir != "" {
		schemaFS = os.DirFS(cfg.SchemasDir)
	}
	cat, err := avrocodec.LoadCatalog(schemaFS)
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	var reg avrocodec.Registry
	if cfg.RegistryURL != "" {
		reg = schemaregistry.New(cfg.RegistryURL, &http.Client{Timeout: 5 * time.Second})
	}
	codec := avrocodec.New(cat, reg)

	rdb, err := redisconn.Open(ctx, cfg.Redis)
	if err != nil {
		return fmt.Errorf("connect to redis (REDIS_ADDR/REDIS_URL): %w", err)
	}
	defer rdb.Close()
	store := consent.NewStore(rdb, cfg.ConsentPrefix)

	cfg.Kafka.ClientID = "consentgate-consent-sync"
	w := stream.NewWriter(cfg.Kafka)
	defer w.Close()
	r := stream.NewReader(cfg.Kafka, cfg.Input)
	defer r.Close()

	s := csync.New(csync.Options{RevocationsTopic: cfg.RevocationsTopic, DLQSuffix: cfg.DLQSuffix, KnownPurposes: known}, codec, store)
	runner := &stream.Runner{
		Source: r, Sink: w, Process: s.Process,
		BatchSize: cfg.BatchSize, Linger: cfg.Linger, DrainTimeout: cfg.DrainTimeout, Log: log,
	}
	log.Info("syncing consent")
	err = runner.Run(ctx)
	log.Info("stopped", "records", runner.Records.Load(), "applied", s.Applied.Load(), "ignored", s.Ignored.Load(),
		"invalid", s.Invalid.Load(), "unknown_purpose", s.UnknownPurpose.Load(), "notices", s.Notices.Load())
	return err
}
