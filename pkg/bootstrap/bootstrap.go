// Package bootstrap holds what every pipeline service does the same way at
// start: the main → run shape (JSON logs, SIGINT/SIGTERM, exit codes), the
// settings they share (Kafka, the input consumer group, Redis, schemas,
// dead letters, batching), and building the Avro codec from those settings.
//
// Each service keeps its own Config embedding Common, adds its own
// settings, and wires its stages by hand.
package bootstrap

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
	"strings"
	"syscall"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/pkg/telemetry"
	"github.com/consentgate/consentgate/schemas"
)

// RunFunc is a service's run function: it returns when ctx ends (after
// draining) or on a fatal error.
type RunFunc func(ctx context.Context, log *slog.Logger, args []string) error

// Main runs run with a JSON logger and a context cancelled by SIGINT or
// SIGTERM, and exits: 0 on success or --help, 1 on error. It is the only
// place a service exits.
func Main(service string, run RunFunc) {
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stderr, nil))).With("service", service)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, log, os.Args[1:])
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		log.Error(service+" stopped", "error", err.Error())
		os.Exit(1)
	}
}

// Parse fills the settings of set from the environment and args and
// validates them with validate (a closure, so that it sees the parsed values).
// On --help it prints the usage to stdout and
// returns flag.ErrHelp. Otherwise it returns every problem at once.
func Parse(set *envflag.Set, args []string, validate func() error) error {
	perr := set.Parse(args, os.Getenv)
	if errors.Is(perr, flag.ErrHelp) {
		set.PrintUsage(os.Stdout)
		return perr
	}
	if err := errors.Join(perr, validate()); err != nil {
		return fmt.Errorf("bad configuration (see --help):\n%w", err)
	}
	return nil
}

// Common is the configuration every pipeline service shares.
type Common struct {
	Kafka     stream.Config
	Input     stream.ReaderConfig
	Redis     redisconn.Config
	Telemetry telemetry.Config

	SchemasDir    string
	RegistryURL   string
	DLQSuffix     string
	ConsentPrefix string
	BatchSize     int
	Linger        time.Duration
	DrainTimeout  time.Duration
}

// DefaultCommon returns the shared defaults for a service consuming topics
// in consumer group group.
func DefaultCommon(topics []string, group string) Common {
	return Common{
		Telemetry: telemetry.Config{SampleRatio: 0.01},
		Kafka:     stream.DefaultConfig(),
		Input: stream.ReaderConfig{
			Topics:         topics,
			GroupID:        group,
			MaxWait:        250 * time.Millisecond,
			SessionTimeout: 10 * time.Second,
			FromBeginning:  true,
		},
		Redis:        redisconn.DefaultConfig(),
		DLQSuffix:    ".dlq",
		BatchSize:    500,
		Linger:       5 * time.Millisecond,
		DrainTimeout: 20 * time.Second,
	}
}

// Flags declares the shared settings on s; prefix names the service's own
// variables, such as "ENFORCER_" for ENFORCER_TOPICS.
func (c *Common) Flags(s *envflag.Set, prefix string) {
	c.Kafka.Flags(s)
	c.Input.Flags(s, prefix)
	c.Redis.Flags(s)
	c.Telemetry.Flags(s, prefix)
	s.String(&c.ConsentPrefix, "consent-prefix", "CONSENT_KEY_PREFIX", "prefix of the consent keys in Redis")
	s.String(&c.SchemasDir, "schemas-dir", "SCHEMAS_DIR", "folder of .avsc schemas; empty uses the schemas built in")
	s.String(&c.RegistryURL, "schema-registry-url", "SCHEMA_REGISTRY_URL", "Confluent Schema Registry for id-framed input; empty: such input is dead-lettered")
	s.String(&c.DLQSuffix, "dlq-suffix", "DLQ_SUFFIX", "records of topic T that cannot be processed go to T+suffix")
	s.Int(&c.BatchSize, "batch-size", prefix+"BATCH_SIZE", "most records processed per batch")
	s.Duration(&c.Linger, "linger", prefix+"LINGER", "how long a batch waits for more records after the first")
	s.Duration(&c.DrainTimeout, "drain-timeout", prefix+"DRAIN_TIMEOUT", "on SIGTERM, how long in-flight work may take to finish")
}

// prefixGlob are the characters Redis glob patterns (ACL key and channel
// patterns, SCAN MATCH) treat specially; CONSENT_KEY_PREFIX may hold none.
const prefixGlob = `*?[]\\`

// Validate reports every problem at once, each with what to set.
func (c Common) Validate(prefix string) error {
	errs := []error{c.Kafka.Validate(), c.Input.Validate(prefix), c.Redis.Validate(), c.Telemetry.Validate(prefix)}
	errs = append(errs, ValidateSchemas(c.SchemasDir, c.RegistryURL))
	if c.DLQSuffix == "" {
		errs = append(errs, errors.New("empty dead-letter suffix: set DLQ_SUFFIX, e.g. .dlq"))
	}
	if strings.ContainsAny(c.ConsentPrefix, prefixGlob) {
		// The documented Redis ACL lines put the prefix into key and
		// channel patterns, where these are wildcards: "t*:" would let
		// the service reach every prefix starting with t.
		errs = append(errs, errors.New(`consent key prefix holds a glob character (* ? [ ] or \), which the Redis ACL patterns of the services would read as a wildcard, reaching other prefixes: set CONSENT_KEY_PREFIX without them, e.g. tenant-a:`))
	}
	if strings.ContainsAny(c.ConsentPrefix, "{}") {
		// A brace would become the Redis Cluster hash tag of every key.
		errs = append(errs, errors.New("consent key prefix holds { or }, which would change the Redis Cluster hash tag of the consent keys: set CONSENT_KEY_PREFIX without them, e.g. tenant-a:"))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch size %d out of range: set %sBATCH_SIZE to 1..100000", c.BatchSize, prefix))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("negative linger: set %sLINGER, e.g. 5ms", prefix))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("drain timeout must be positive: set %sDRAIN_TIMEOUT, e.g. 20s", prefix))
	}
	return errors.Join(errs...)
}

// LogAttrs lists the shared settings for the start-up log, secrets masked.
func (c Common) LogAttrs() []slog.Attr {
	return append([]slog.Attr{
		slog.Any("kafka_brokers", c.Kafka.Brokers),
		slog.Any("input_topics", c.Input.Topics),
		slog.String("group_id", c.Input.GroupID),
		slog.String("schemas_dir", c.SchemasDir),
		slog.Bool("schema_registry_set", c.RegistryURL != ""),
		slog.String("dlq_suffix", c.DLQSuffix),
		slog.Int("batch_size", c.BatchSize),
		slog.Duration("linger", c.Linger),
		slog.String("telemetry_addr", c.Telemetry.Addr),
		slog.Float64("trace_sample_ratio", c.Telemetry.SampleRatio),
	}, append(c.Kafka.Security.LogAttrs(), c.Redis.LogAttrs()...)...)
}

// Codec loads the schemas (built in, or SchemasDir) and, when RegistryURL is
// set, a Schema Registry client for Confluent-framed input.
func (c Common) Codec() (*avrocodec.Codec, error) { return LoadCodec(c.SchemasDir, c.RegistryURL) }

// ValidateSchemas checks SCHEMAS_DIR and SCHEMA_REGISTRY_URL (either may be
// empty), saying what to set.
func ValidateSchemas(schemasDir, registryURL string) error {
	var errs []error
	if registryURL != "" {
		if err := schemaregistry.ValidateURL(registryURL); err != nil {
			errs = append(errs, fmt.Errorf("SCHEMA_REGISTRY_URL: %w", err))
		}
	}
	if schemasDir != "" {
		if st, err := os.Stat(schemasDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("SCHEMAS_DIR %q is not a folder: set it to the folder of .avsc files, or unset it", schemasDir))
		}
	}
	return errors.Join(errs...)
}

// LoadCodec loads the schemas (built in, or schemasDir) and, when
// registryURL is set, a Schema Registry client for Confluent-framed input.
func LoadCodec(schemasDir, registryURL string) (*avrocodec.Codec, error) {
	var schemaFS fs.FS = schemas.FS
	if schemasDir != "" {
		schemaFS = os.DirFS(schemasDir)
	}
	cat, err := avrocodec.LoadCatalog(schemaFS)
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	var reg avrocodec.Registry
	if registryURL != "" {
		reg = schemaregistry.New(registryURL, &http.Client{Timeout: 5 * time.Second})
	}
	return avrocodec.New(cat, reg), nil
}

// Runner returns a stream.Runner over src and sink with the shared batching
// settings, traced and measured through tel (which may be nil).
func (c Common) Runner(src stream.Source, sink stream.Writer, process stream.Processor, log *slog.Logger, tel *telemetry.Telemetry) (*stream.Runner, error) {
	r := &stream.Runner{
		Source: src, Sink: sink, Process: process,
		BatchSize: c.BatchSize, Linger: c.Linger, DrainTimeout: c.DrainTimeout, Log: log, DLQSuffix: c.DLQSuffix,
	}
	if tel != nil {
		m, err := telemetry.NewRunnerMetrics(tel.Meter())
		if err != nil {
			return nil, fmt.Errorf("runner metrics: %w", err)
		}
		r.Observer, r.Tracer = m, tel.Tracer()
		tel.AddReadiness("processing", func(context.Context) error {
			if r.Paused() {
				return errors.New("paused, failing closed: a batch cannot be processed (see the logs)")
			}
			return nil
		})
	}
	return r, nil
}

// StartTelemetry sets up traces, metrics and the /metrics, /healthz and
// /readyz endpoint of service, and logs where it listens. The returned stop
// flushes and closes them within 5 s, even after ctx has ended: defer it.
func (c Common) StartTelemetry(ctx context.Context, service string, log *slog.Logger) (*telemetry.Telemetry, func(), error) {
	tel, err := telemetry.Setup(ctx, service, c.Telemetry, log)
	if err != nil {
		return nil, nil, err
	}
	if a := tel.Addr(); a != "" {
		log.Info("telemetry endpoint", "addr", a, "paths", "/metrics /healthz /readyz")
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}
	return tel, stop, nil
}
