package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/stream"
)

// Config is consent-sync's configuration.
type Config struct {
	Kafka stream.Config
	Input stream.ReaderConfig
	Redis redisconn.Config

	Policy           string
	SchemasDir       string
	RegistryURL      string
	RevocationsTopic string
	DLQSuffix        string
	ConsentPrefix    string
	BatchSize        int
	Linger           time.Duration
	DrainTimeout     time.Duration
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Kafka: stream.DefaultConfig(),
		Input: stream.ReaderConfig{
			Topics:         []string{"consent.changes"},
			GroupID:        "consentgate-consent-sync",
			MaxWait:        100 * time.Millisecond,
			SessionTimeout: 10 * time.Second,
			FromBeginning:  true,
		},
		Redis:            redisconn.DefaultConfig(),
		RevocationsTopic: "consent.revocations",
		DLQSuffix:        ".dlq",
		BatchSize:        500,
		Linger:           2 * time.Millisecond,
		DrainTimeout:     20 * time.Second,
	}
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("consent-sync", "applies consent changes from Kafka to the consent state in Redis (newest captured_at wins) and publishes revocation notices.")
	c.Kafka.Flags(s)
	c.Input.Flags(s, "CONSENT_SYNC_")
	c.Redis.Flags(s)
	s.String(&c.ConsentPrefix, "consent-prefix", "CONSENT_KEY_PREFIX", "prefix of the consent keys in Redis")
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML); when set, changes for purposes it does not declare are reported")
	s.String(&c.SchemasDir, "schemas-dir", "SCHEMAS_DIR", "folder of .avsc schemas; empty uses the schemas built in")
	s.String(&c.RegistryURL, "schema-registry-url", "SCHEMA_REGISTRY_URL", "Confluent Schema Registry for id-framed input")
	s.String(&c.RevocationsTopic, "revocations-topic", "REVOCATIONS_TOPIC", "topic of the revocation notices")
	s.String(&c.DLQSuffix, "dlq-suffix", "DLQ_SUFFIX", "invalid changes of topic T go to T+suffix")
	s.Int(&c.BatchSize, "batch-size", "CONSENT_SYNC_BATCH_SIZE", "most changes applied per batch")
	s.Duration(&c.Linger, "linger", "CONSENT_SYNC_LINGER", "how long a batch waits for more changes after the first")
	s.Duration(&c.DrainTimeout, "drain-timeout", "CONSENT_SYNC_DRAIN_TIMEOUT", "on SIGTERM, how long in-flight work may take to finish")
	return s
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Input.Validate("CONSENT_SYNC_"), c.Redis.Validate()}
	if c.RevocationsTopic == "" {
		errs = append(errs, errors.New("empty revocations topic: set REVOCATIONS_TOPIC"))
	}
	if c.DLQSuffix == "" {
		errs = append(errs, errors.New("empty dead-letter suffix: set DLQ_SUFFIX, e.g. .dlq"))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch size %d out of range: set CONSENT_SYNC_BATCH_SIZE to 1..100000", c.BatchSize))
	}
	if c.Linger < 0 {
		errs = append(errs, errors.New("negative linger: set CONSENT_SYNC_LINGER, e.g. 2ms"))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("drain timeout must be positive: set CONSENT_SYNC_DRAIN_TIMEOUT, e.g. 20s"))
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
		slog.String("revocations_topic", c.RevocationsTopic),
		slog.Int("batch_size", c.BatchSize),
	)
}
