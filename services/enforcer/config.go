package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/stream"
)

// Config is the enforcer's configuration.
type Config struct {
	Kafka  stream.Config
	Input  stream.ReaderConfig
	Redis  redisconn.Config
	Policy string

	SchemasDir     string
	RegistryURL    string
	AuditTopic     string
	DLQSuffix      string
	ConsentPrefix  string
	BatchSize      int
	Linger         time.Duration
	DrainTimeout   time.Duration
	RetryBackoffMx time.Duration
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Kafka: stream.DefaultConfig(),
		Input: stream.ReaderConfig{
			Topics:         []string{"customer.events"},
			GroupID:        "consentgate-enforcer",
			MaxWait:        250 * time.Millisecond,
			SessionTimeout: 10 * time.Second,
			FromBeginning:  true,
		},
		Redis:          redisconn.DefaultConfig(),
		AuditTopic:     "consent.audit",
		DLQSuffix:      ".dlq",
		BatchSize:      500,
		Linger:         5 * time.Millisecond,
		DrainTimeout:   20 * time.Second,
		RetryBackoffMx: 5 * time.Second,
	}
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("enforcer", "reads customer events, checks consent in Redis and publishes per-purpose compliant streams, audit records and dead letters.")
	c.Kafka.Flags(s)
	c.Input.Flags(s, "ENFORCER_")
	c.Redis.Flags(s)
	s.String(&c.ConsentPrefix, "consent-prefix", "CONSENT_KEY_PREFIX", "prefix of the consent keys in Redis")
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML): purposes and streams (required)")
	s.String(&c.SchemasDir, "schemas-dir", "SCHEMAS_DIR", "folder of .avsc schemas; empty uses the schemas built in")
	s.String(&c.RegistryURL, "schema-registry-url", "SCHEMA_REGISTRY_URL", "Confluent Schema Registry for id-framed input; empty: such input is dead-lettered")
	s.String(&c.AuditTopic, "audit-topic", "AUDIT_TOPIC", "topic of the decision records")
	s.String(&c.DLQSuffix, "dlq-suffix", "DLQ_SUFFIX", "dead letters of topic T go to T+suffix")
	s.Int(&c.BatchSize, "batch-size", "ENFORCER_BATCH_SIZE", "most records processed per batch")
	s.Duration(&c.Linger, "linger", "ENFORCER_LINGER", "how long a batch waits for more records after the first")
	s.Duration(&c.DrainTimeout, "drain-timeout", "ENFORCER_DRAIN_TIMEOUT", "on SIGTERM, how long in-flight work may take to finish")
	return s
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Input.Validate("ENFORCER_"), c.Redis.Validate()}
	if c.Policy == "" {
		errs = append(errs, errors.New("no policy: set POLICY_FILE (or --policy) to the policy YAML file"))
	}
	if c.RegistryURL != "" {
		if u, err := url.Parse(c.RegistryURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("SCHEMA_REGISTRY_URL is not an http(s) URL"))
		}
	}
	if c.AuditTopic == "" {
		errs = append(errs, errors.New("empty audit topic: set AUDIT_TOPIC"))
	}
	if c.DLQSuffix == "" {
		errs = append(errs, errors.New("empty dead-letter suffix: set DLQ_SUFFIX, e.g. .dlq"))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch size %d out of range: set ENFORCER_BATCH_SIZE to 1..100000", c.BatchSize))
	}
	if c.Linger < 0 {
		errs = append(errs, errors.New("negative linger: set ENFORCER_LINGER, e.g. 5ms"))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("drain timeout must be positive: set ENFORCER_DRAIN_TIMEOUT, e.g. 20s"))
	}
	return errors.Join(errs...)
}

// LogValue lists the settings with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("kafka_brokers", c.Kafka.Brokers),
		slog.Any("input_topics", c.Input.Topics),
		slog.String("group_id", c.Input.GroupID),
		slog.Any("redis_addr", c.Redis.Addrs),
		slog.Bool("redis_url_set", c.Redis.URL != ""),
		slog.String("policy_file", c.Policy),
		slog.String("schemas_dir", c.SchemasDir),
		slog.Bool("schema_registry_set", c.RegistryURL != ""),
		slog.String("audit_topic", c.AuditTopic),
		slog.String("dlq_suffix", c.DLQSuffix),
		slog.Int("batch_size", c.BatchSize),
		slog.Duration("linger", c.Linger),
	)
}
