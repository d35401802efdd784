// Command enforcer consumes customer events, checks each subject's consent in
// Redis against the policy, and publishes what is allowed to per-purpose
// compliant streams, one audit record per event and stream, and what cannot
// be decoded to the dead-letter topic. See README.md at the repository root.
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
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "enforcer")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, log, os.Args[1:])
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		log.Error("enforcer stopped", "error", err.Error())
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

	pol, err := policy.Load(cfg.Policy)
	if err != nil {
		return fmt.Errorf("load policy:\n%w", err)
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

	cfg.Kafka.ClientID = "consentgate-enforcer"
	w := stream.NewWriter(cfg.Kafka)
	defer w.Close()
	r := stream.NewReader(cfg.Kafka, cfg.Input)
	defer r.Close() // closes before the writer: leaves the group first

	e := enforce.New(enforce.Options{AuditTopic: cfg.AuditTopic, DLQSuffix: cfg.DLQSuffix}, codec, store, pol)
	runner := &stream.Runner{
		Source: r, Sink: w, Process: e.Process,
		BatchSize: cfg.BatchSize, Linger: cfg.Linger,
		DrainTimeout: cfg.DrainTimeout, MaxBackoff: cfg.RetryBackoffMx, Log: log,
	}
	log.Info("enforcing", "streams", len(pol.Streams), "policy_version", pol.Version)
	err = runner.Run(ctx)
	log.Info("stopped", "records", runner.Records.Load(), "passed", e.Passed.Load(),
		"dropped", e.Dropped.Load(), "dead_lettered", e.DeadLettered.Load(), "retries", runner.Retries.Load())
	return err
}
