package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/services/consent-sync/internal/intake"
)

// envPrefix names consent-sync's own variables (CONSENT_SYNC_TOPICS, …).
const envPrefix = "CONSENT_SYNC_"

// Config is consent-sync's configuration.
type Config struct {
	bootstrap.Common
	Policy           string
	RevocationsTopic string

	// Rebuild replays the consent topics from the beginning into Redis and
	// exits (see internal/rebuild); RebuildForce allows it when consent keys
	// with the configured prefix already exist.
	Rebuild, RebuildForce bool
	// AllowTopicRetention skips the start-up check that the consent
	// topics keep every record (no compaction, no time or size retention).
	AllowTopicRetention bool

	// Intake is the HTTP intake for consent changes (off by default).
	Intake intake.Config
	// MaxClockSkew bounds how far captured_at may lie after a change
	// reached the pipeline.
	MaxClockSkew time.Duration
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	c := Config{
		Common:           bootstrap.DefaultCommon([]string{"consent.changes"}, "consentgate-consent-sync"),
		RevocationsTopic: "consent.revocations",
		Intake:           intake.DefaultConfig(),
	}
	// Withdrawals must reach Redis fast: wait less for more changes.
	c.Input.MaxWait = 100 * time.Millisecond
	c.Linger = 2 * time.Millisecond
	c.Telemetry.Addr = "127.0.0.1:9465"
	c.MaxClockSkew = consent.DefaultMaxClockSkew
	return c
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("consent-sync", "applies consent changes from Kafka to the consent state in Redis (newest captured_at wins) and publishes revocation notices; "+
		"with --rebuild, replays the consent topic into Redis and exits; with --intake-addr, also accepts changes over HTTP (POST "+intake.Path+").")
	c.Common.Flags(s, envPrefix)
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML); when set, changes for purposes it does not declare are counted and reported")
	s.Duration(&c.MaxClockSkew, "max-clock-skew", "CONSENT_MAX_CLOCK_SKEW", "a change whose captured_at lies further after its record's timestamp is rejected (dead-lettered): newest wins for ever, so a future date would override every later real change")
	s.String(&c.RevocationsTopic, "revocations-topic", "REVOCATIONS_TOPIC", "topic of the revocation notices")
	s.Bool(&c.Rebuild, "rebuild", envPrefix+"REBUILD", "replay the input topics from the beginning into Redis (CONSENT_KEY_PREFIX), up to the high watermarks at start, then exit; no consumer group, no commits, no notices, no dead letters")
	s.Bool(&c.RebuildForce, "rebuild-force", envPrefix+"REBUILD_FORCE", "let --rebuild write into a prefix that already holds consent keys (meant for an empty Redis or a fresh prefix)")
	s.Bool(&c.AllowTopicRetention, "allow-topic-retention", envPrefix+"ALLOW_TOPIC_RETENTION", "start even when a consent topic is compacted or has time or size retention (the topic is the system of record: a replay from it must find every change)")
	c.Intake.Flags(s)
	return s
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(envPrefix), c.Intake.Validate()}
	if c.RevocationsTopic == "" {
		errs = append(errs, errors.New("empty revocations topic: set REVOCATIONS_TOPIC"))
	}
	if c.MaxClockSkew <= 0 {
		errs = append(errs, errors.New("CONSENT_MAX_CLOCK_SKEW must be positive, e.g. 15m"))
	}
	if c.RebuildForce && !c.Rebuild {
		errs = append(errs, errors.New("CONSENT_SYNC_REBUILD_FORCE without CONSENT_SYNC_REBUILD: set --rebuild too, or unset the force"))
	}
	if c.Rebuild && c.Intake.Addr != "" {
		errs = append(errs, errors.New("CONSENT_INTAKE_ADDR is set with CONSENT_SYNC_REBUILD: a rebuild serves no intake; unset one of them"))
	}
	return errors.Join(errs...)
}

// IntakeTopic is the topic the intake produces to.
func (c Config) IntakeTopic() string {
	if c.Intake.Topic != "" {
		return c.Intake.Topic
	}
	if len(c.Input.Topics) > 0 {
		return c.Input.Topics[0]
	}
	return ""
}

// LogValue lists the settings with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("consent_prefix", c.ConsentPrefix),
		slog.String("policy_file", c.Policy),
		slog.String("revocations_topic", c.RevocationsTopic),
		slog.Bool("rebuild", c.Rebuild),
		slog.Bool("rebuild_force", c.RebuildForce),
		slog.Bool("allow_topic_retention", c.AllowTopicRetention),
		slog.String("intake_addr", c.Intake.Addr),
		slog.String("intake_topic", c.IntakeTopic()),
		slog.Int("intake_max_body", c.Intake.MaxBodyBytes))...)
}
