package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/services/consent-sync/internal/intake"
	"github.com/consentgate/consentgate/services/consent-sync/internal/signalsin"
)

// envPrefix names consent-sync's own variables (CONSENT_SYNC_TOPICS, …).
const envPrefix = "CONSENT_SYNC_"

// Config is consent-sync's configuration.
type Config struct {
	bootstrap.Common
	Policy           string
	RevocationsTopic string
	// Purposes is the purpose catalogue when there is no policy file
	// (CONSENT_PURPOSES); one of the two is required with the intake.
	Purposes []string

	// Rebuild replays the consent topics from the beginning into Redis and
	// exits (see internal/rebuild); RebuildForce allows it when consent keys
	// with the configured prefix already exist.
	Rebuild, RebuildForce bool
	// AllowTopicRetention skips the start-up check that the consent
	// topics keep every record (no compaction, no time or size retention).
	AllowTopicRetention bool

	// Intake is the HTTP intake for consent changes (off by default).
	Intake intake.Config
	// Signals is the consumer of the consent signals topic (on by
	// default; it needs POLICY_FILE with a signals section).
	Signals signalsin.Config
	// Keys is the keys topic where an erasure destroys the subject's
	// data keys (package shred); no key material is needed for that.
	Keys shred.Settings
	// MaxClockSkew is the bound of the clock rule
	// (consent.Change.BoundCapturedAt), the same for the intake and the
	// consumer.
	MaxClockSkew time.Duration
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	c := Config{
		Common:           bootstrap.DefaultCommon([]string{"consent.changes"}, "consentgate-consent-sync"),
		RevocationsTopic: "consent.revocations",
		Intake:           intake.DefaultConfig(),
		Signals:          signalsin.DefaultConfig(),
		Keys:             shred.DefaultSettings(),
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
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML), the purpose catalogue: the intake accepts only its purposes, and consumed changes for other purposes are counted and reported")
	c.Keys.Flags(s, false)
	s.List(&c.Purposes, "purposes", "CONSENT_PURPOSES", "comma-separated purpose ids, the catalogue when POLICY_FILE is not set (one of the two is required with the intake)")
	s.Duration(&c.MaxClockSkew, "max-clock-skew", "CONSENT_MAX_CLOCK_SKEW", "clock rule, for the intake and the consumer alike: a GRANT dated after its receipt counts as made at receipt, and is refused beyond this; a DENY, WITHDRAW or ERASE dated beyond this after its receipt counts as made at receipt + this (never refused)")
	s.String(&c.RevocationsTopic, "revocations-topic", "REVOCATIONS_TOPIC", "topic of the revocation notices")
	s.Bool(&c.Rebuild, "rebuild", envPrefix+"REBUILD", "replay the input topics from the beginning into Redis (CONSENT_KEY_PREFIX), up to the high watermarks at start, then exit; no consumer group, no commits, no notices, no dead letters")
	s.Bool(&c.RebuildForce, "rebuild-force", envPrefix+"REBUILD_FORCE", "let --rebuild write into a prefix that already holds consent keys (meant for an empty Redis or a fresh prefix)")
	s.Bool(&c.AllowTopicRetention, "allow-topic-retention", envPrefix+"ALLOW_TOPIC_RETENTION", "start even when a consent topic is compacted or has time or size retention (the topic is the system of record: a replay from it must find every change)")
	c.Intake.Flags(s)
	c.Signals.Flags(s)
	return s
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(envPrefix), c.Intake.Validate()}
	errs = append(errs, c.Signals.Validate())
	errs = append(errs, c.validateSignals()...)
	if c.RevocationsTopic == "" {
		errs = append(errs, errors.New("empty revocations topic: set REVOCATIONS_TOPIC"))
	}
	if c.Keys.Topic == "" {
		// No off switch: an erasure must reach the data keys of every
		// encrypted field (when the topic does not exist, none exists).
		errs = append(errs, errors.New("empty keys topic: set KEYS_TOPIC to the keys topic (consent.keys), the one the enforcers use; an erasure marks it"))
	}
	if c.MaxClockSkew <= 0 {
		errs = append(errs, errors.New("CONSENT_MAX_CLOCK_SKEW must be positive, e.g. 15m"))
	}
	if c.Policy != "" && len(c.Purposes) > 0 {
		errs = append(errs, errors.New("POLICY_FILE and CONSENT_PURPOSES are both set: the catalogue comes from one of them; unset CONSENT_PURPOSES"))
	}
	for i, p := range c.Purposes {
		if !purposeIDSyntax.MatchString(p) {
			errs = append(errs, fmt.Errorf("CONSENT_PURPOSES item %d is not a purpose id (lower case letters, digits and _, starting with a letter, at most 64)", i+1))
		}
	}
	if c.Intake.Addr != "" && c.Policy == "" && len(c.Purposes) == 0 {
		errs = append(errs, errors.New("the intake (CONSENT_INTAKE_ADDR) accepts only the purposes of the policy's catalogue: "+
			"set POLICY_FILE to the enforcer's policy file, or CONSENT_PURPOSES to a comma-separated list of purpose ids"))
	}
	if c.RebuildForce && !c.Rebuild {
		errs = append(errs, errors.New("CONSENT_SYNC_REBUILD_FORCE without CONSENT_SYNC_REBUILD: set --rebuild too, or unset the force"))
	}
	if c.Rebuild && c.Intake.Addr != "" {
		errs = append(errs, errors.New("CONSENT_INTAKE_ADDR is set with CONSENT_SYNC_REBUILD: a rebuild serves no intake; unset one of them"))
	}
	return errors.Join(errs...)
}

// validateSignals checks the signals topic and group against the other
// topics and groups: the signals topic is read by its own group and holds
// only signal records.
func (c Config) validateSignals() []error {
	t := c.Signals.Topic
	if !c.Signals.Enabled() || c.Rebuild {
		return nil
	}
	var errs []error
	for name, other := range map[string][]string{"CONSENT_SYNC_TOPICS": c.Input.Topics, "CONSENT_INTAKE_TOPIC": {c.IntakeTopic()},
		"REVOCATIONS_TOPIC": {c.RevocationsTopic}, "KEYS_TOPIC": {c.Keys.Topic}} {
		if slices.Contains(other, t) {
			errs = append(errs, fmt.Errorf("CONSENT_SIGNALS_TOPIC %s is also %s: the signals topic holds signal submissions only; give it a topic of its own (consent.signals), or set it to off to turn the signals consumer off", t, name))
		}
	}
	for _, in := range c.Input.Topics {
		if t == in+c.DLQSuffix || in == t+c.DLQSuffix {
			errs = append(errs, fmt.Errorf("CONSENT_SIGNALS_TOPIC %s and CONSENT_SYNC_TOPICS %s would share dead letters (DLQ_SUFFIX): give the signals topic another name", t, in))
		}
	}
	if c.Signals.GroupID == c.Input.GroupID {
		errs = append(errs, fmt.Errorf("CONSENT_SIGNALS_GROUP_ID is CONSENT_SYNC_GROUP_ID (%s): the signals consumer needs a group of its own, e.g. %s", c.Input.GroupID, signalsin.DefaultGroupID))
	}
	return errs
}

// purposeIDSyntax is the shape of a purpose id, as pkg/policy checks it
// (bounded here to 64 characters).
var purposeIDSyntax = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// catalogue returns the known purposes: those of the policy file, or
// CONSENT_PURPOSES; nil when neither is set. The policy is returned too
// (nil without POLICY_FILE): its signals section drives the signals intake.
func (c Config) catalogue() (map[string]bool, *policy.Policy, error) {
	ids := c.Purposes
	var pol *policy.Policy
	if c.Policy != "" {
		var err error
		pol, err = policy.Load(c.Policy)
		if err != nil {
			return nil, nil, fmt.Errorf("load policy:\n%w", err)
		}
		ids = nil
		for _, p := range pol.Purposes {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return nil, pol, nil
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	return known, pol, nil
}

// logSafe renders an untrusted string (a purpose id read from the consent
// topic) for a log line: as itself when it has the shape of a purpose id,
// otherwise only as its length and a SHA-256 prefix, so that no pasted
// subject id, control character or megabyte of junk reaches the logs.
func logSafe(s string) string {
	if purposeIDSyntax.MatchString(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "(not a purpose id: " + strconv.Itoa(len(s)) + " bytes, sha256 " + hex.EncodeToString(sum[:6]) + ")"
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
		slog.Any("purposes", c.Purposes),
		slog.String("revocations_topic", c.RevocationsTopic),
		slog.String("keys_topic", c.Keys.Topic),
		slog.Bool("rebuild", c.Rebuild),
		slog.Bool("rebuild_force", c.RebuildForce),
		slog.Bool("allow_topic_retention", c.AllowTopicRetention),
		slog.String("intake_addr", c.Intake.Addr),
		slog.String("intake_topic", c.IntakeTopic()),
		slog.Int("intake_max_body", c.Intake.MaxBodyBytes),
		slog.String("intake_tokens_file", c.Intake.TokensFile),
		slog.Duration("intake_reload_interval", c.Intake.ReloadInterval),
		slog.String("intake_tls_cert_file", c.Intake.TLSCertFile),
		slog.String("intake_tls_client_ca_file", c.Intake.TLSClientCAFile),
		slog.Bool("intake_insecure", c.Intake.Insecure),
		slog.String("signals_topic", c.Signals.Topic),
		slog.String("signals_group_id", c.Signals.GroupID),
		slog.Duration("max_clock_skew", c.MaxClockSkew))...)
}
