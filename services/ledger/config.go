package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/pkg/telemetry"
)

const envPrefix = "LEDGER_"

// Config is the ledger's configuration.
type Config struct {
	Kafka     stream.Config
	Telemetry telemetry.Config

	// DSN is the database: sqlite:<file> (the default) or postgres://….
	DSN string

	ChangesTopic, AuditTopic, RevocationsTopic, CheckpointsTopic string
	DeadLetterTopics                                             []string
	// KeysTopic is the keys topic of crypto-shredding (consent.keys): the
	// ledger records when each data key was created and destroyed, never
	// the key. Empty: not read.
	KeysTopic string

	SchemasDir, RegistryURL string
	BatchSize               int
	Linger, Refresh         time.Duration

	// SealKeyFile holds the sealer's note signer key; empty: the audit is
	// not sealed here. VerifierKeysFile lists further trusted verifier
	// keys (rotated or other sealers' keys).
	SealKeyFile, VerifierKeysFile string
	SealInterval                  time.Duration

	// Console is the read-only web console (console.go).
	Console ConsoleConfig
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Kafka:            stream.DefaultConfig(),
		Telemetry:        telemetry.Config{Addr: "127.0.0.1:9467", SampleRatio: 0.01},
		DSN:              "sqlite:ledger.db",
		ChangesTopic:     "consent.changes",
		AuditTopic:       "consent.audit",
		RevocationsTopic: "consent.revocations",
		CheckpointsTopic: "consent.audit.checkpoints",
		DeadLetterTopics: []string{"customer.events.dlq", "consent.changes.dlq"},
		KeysTopic:        "consent.keys",
		BatchSize:        5000,
		Linger:           200 * time.Millisecond,
		Refresh:          10 * time.Second,
		SealInterval:     10 * time.Second,
	}
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("ledger", "consumes consent changes, audit records, revocation notices, dead letters and audit checkpoints into the compliance ledger "+
		"(SQLite or PostgreSQL), each record exactly once, for consentctl and the console.")
	c.Kafka.Flags(s)
	c.Telemetry.Flags(s, envPrefix)
	s.Secret(&c.DSN, "dsn", envPrefix+"DSN", "the ledger database: sqlite:<file> (embedded) or postgres://user:password@host:port/db (production)")
	s.String(&c.ChangesTopic, "changes-topic", envPrefix+"CHANGES_TOPIC", "topic of the consent changes")
	s.String(&c.AuditTopic, "audit-topic", envPrefix+"AUDIT_TOPIC", "topic of the audit records")
	s.String(&c.RevocationsTopic, "revocations-topic", "REVOCATIONS_TOPIC", "topic of the revocation notices")
	s.String(&c.CheckpointsTopic, "checkpoints-topic", envPrefix+"CHECKPOINTS_TOPIC", "topic of the audit checkpoints")
	s.List(&c.DeadLetterTopics, "dead-letter-topics", envPrefix+"DEAD_LETTER_TOPICS", "comma-separated dead-letter topics (only their headers are kept)")
	s.String(&c.KeysTopic, "keys-topic", KeysTopicEnv, "keys topic of crypto-shredding: when each data key was created and destroyed is recorded "+
		"(never a key); set to empty (--keys-topic= or "+KeysTopicEnv+"=) to not read it; a topic not created yet is looked for at every refresh")
	s.String(&c.SchemasDir, "schemas-dir", "SCHEMAS_DIR", "folder of .avsc schemas; empty uses the schemas built in")
	s.String(&c.RegistryURL, "schema-registry-url", "SCHEMA_REGISTRY_URL", "Confluent Schema Registry for id-framed consent changes")
	s.Int(&c.BatchSize, "batch-size", envPrefix+"BATCH_SIZE", "most records per database transaction")
	s.Duration(&c.Linger, "linger", envPrefix+"LINGER", "how long a transaction waits for more records after the first")
	s.Duration(&c.Refresh, "refresh", envPrefix+"REFRESH", "how often new partitions and topics are looked for")
	s.String(&c.SealKeyFile, "seal-key-file", envPrefix+"SEAL_KEY_FILE", "file holding the sealer's signing key (note format, PRIVATE+KEY+consentgate-audit+...; make one with `consentctl keygen`); empty: the ledger does not seal the audit")
	s.String(&c.VerifierKeysFile, "verifier-keys-file", envPrefix+"VERIFIER_KEYS_FILE", "file of further trusted checkpoint verifier keys, one per line (the seal key's own is always trusted)")
	s.Duration(&c.SealInterval, "seal-interval", envPrefix+"SEAL_INTERVAL", "how often a checkpoint of each audit partition that grew is signed and published")
	c.consoleFlags(s)
	return s
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Telemetry.Validate(envPrefix)}
	if !strings.HasPrefix(c.DSN, "sqlite:") && !strings.HasPrefix(c.DSN, "postgres://") && !strings.HasPrefix(c.DSN, "postgresql://") {
		errs = append(errs, errors.New("LEDGER_DSN must start with sqlite: (e.g. sqlite:ledger.db) or postgres:// (its value is not shown: it may hold a password)"))
	}
	for name, t := range map[string]string{envPrefix + "CHANGES_TOPIC": c.ChangesTopic, envPrefix + "AUDIT_TOPIC": c.AuditTopic,
		"REVOCATIONS_TOPIC": c.RevocationsTopic, envPrefix + "CHECKPOINTS_TOPIC": c.CheckpointsTopic} {
		if t == "" || strings.ContainsAny(t, " ,/") {
			errs = append(errs, fmt.Errorf("bad topic name %q: set %s", t, name))
		}
	}
	for _, t := range c.DeadLetterTopics {
		if t == "" || strings.ContainsAny(t, " ,/") {
			errs = append(errs, fmt.Errorf("bad topic name %q: fix %sDEAD_LETTER_TOPICS", t, envPrefix))
		}
	}
	if strings.ContainsAny(c.KeysTopic, " ,/") {
		errs = append(errs, fmt.Errorf("bad topic name %q: set %s (empty: the keys topic is not read)", c.KeysTopic, KeysTopicEnv))
	}
	errs = append(errs, bootstrap.ValidateSchemas(c.SchemasDir, c.RegistryURL))
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch size %d out of range: set %sBATCH_SIZE to 1..100000", c.BatchSize, envPrefix))
	}
	if c.Linger < time.Millisecond {
		errs = append(errs, fmt.Errorf("linger below 1ms: set %sLINGER, e.g. 200ms", envPrefix))
	}
	if c.SealInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("seal interval below 100ms: set %sSEAL_INTERVAL, e.g. 10s", envPrefix))
	}
	for name, f := range map[string]string{envPrefix + "SEAL_KEY_FILE": c.SealKeyFile, envPrefix + "VERIFIER_KEYS_FILE": c.VerifierKeysFile} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				// The value is not shown: an operator who mapped the key
				// itself into the setting would see it printed.
				errs = append(errs, fmt.Errorf("%s cannot be read (the value is not shown: it may be a key): set it to the path of a readable file, or unset it", name))
			}
		}
	}
	if c.Refresh < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("refresh below 100ms: set %sREFRESH, e.g. 10s", envPrefix))
	}
	errs = append(errs, c.validateConsole())
	return errors.Join(errs...)
}

// LogValue lists the settings for the start-up log; the DSN only by kind.
func (c Config) LogValue() slog.Value {
	kind := "sqlite"
	if !strings.HasPrefix(c.DSN, "sqlite:") {
		kind = "postgres"
	}
	return slog.GroupValue(append([]slog.Attr{
		slog.Any("kafka_brokers", c.Kafka.Brokers),
		slog.String("database", kind),
		slog.String("changes_topic", c.ChangesTopic),
		slog.String("audit_topic", c.AuditTopic),
		slog.String("revocations_topic", c.RevocationsTopic),
		slog.String("checkpoints_topic", c.CheckpointsTopic),
		slog.Any("dead_letter_topics", c.DeadLetterTopics),
		slog.String("keys_topic", c.KeysTopic),
		slog.String("schemas_dir", c.SchemasDir),
		slog.Bool("schema_registry_set", c.RegistryURL != ""),
		slog.Int("batch_size", c.BatchSize),
		slog.Duration("linger", c.Linger),
		slog.String("telemetry_addr", c.Telemetry.Addr),
		slog.String("seal_key_file", c.SealKeyFile),
		slog.String("verifier_keys_file", c.VerifierKeysFile),
		slog.Duration("seal_interval", c.SealInterval),
		slog.String("console_addr", c.Console.Addr),
		slog.String("console_tokens_file", c.Console.TokensFile),
	}, c.Kafka.Security.LogAttrs()...)...)
}

// Topics lists the topics the ledger reads, with their kinds.
func (c Config) Topics() []Topic {
	ts := []Topic{{c.ChangesTopic, ledger.HoldsChanges}, {c.AuditTopic, ledger.HoldsAudit}, {c.RevocationsTopic, ledger.HoldsNotices},
		{c.CheckpointsTopic, ledger.HoldsCheckpoints}}
	for _, t := range c.DeadLetterTopics {
		ts = append(ts, Topic{t, ledger.HoldsDeadLetters})
	}
	if c.KeysTopic != "" {
		ts = append(ts, Topic{c.KeysTopic, ledger.HoldsKeys})
	}
	return ts
}

// KeysTopicEnv names the keys topic; set to empty, the topic is not read.
const KeysTopicEnv = envPrefix + "KEYS_TOPIC"

// emptyEnvTurnsOff applies the settings that an empty value turns off:
// envflag takes an empty variable for an unset one (the default), but
// KeysTopicEnv set to empty means "do not read the keys topic".
func (c *Config) emptyEnvTurnsOff(lookup func(string) (string, bool)) {
	if v, ok := lookup(KeysTopicEnv); ok && v == "" {
		c.KeysTopic = ""
	}
}

// Codec loads the schemas and the optional registry client.
func (c Config) Codec() (*avrocodec.Codec, error) {
	return bootstrap.LoadCodec(c.SchemasDir, c.RegistryURL)
}
