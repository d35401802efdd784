package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/shred"
)

// envPrefix names the enforcer's own variables (ENFORCER_TOPICS, …).
const envPrefix = "ENFORCER_"

// Config is the enforcer's configuration.
type Config struct {
	bootstrap.Common
	Policy     string
	AuditTopic string
	// The pseudonymisation key (HMAC-SHA-256), inline or in a file. Never
	// logged.
	PseudonymKey     string
	PseudonymKeyFile string
	// The local consent cache: subjects kept, and the longest an entry
	// is used. Size 0 reads Redis for every batch. The default, 20,000
	// subjects, costs about 20 MiB of heap (a cached state is about 1 KiB);
	// `make bench` (1,000,000 uniformly random subjects) measured a peak
	// RSS of 114 MiB at 20,000 against 370-430 MiB at 100,000, for a hit
	// rate of a few percent either way. Raise it when traffic is skewed
	// towards fewer subjects, and bound the heap with GOMEMLIMIT.
	CacheSize   int
	CacheMaxAge time.Duration
	// Workers is how many goroutines decide a batch: 0 means one per CPU
	// (GOMAXPROCS). What is written does not depend on it.
	Workers int
	// RequireWarm pauses enforcement while a Redis node's consent state
	// is older than what consent-sync has committed from the consent
	// topics (the state watermark, see pkg/consent).
	RequireWarm bool
	// ConsentGroupID and ConsentTopics name consent-sync's consumer
	// group and input topics, whose committed offsets the watermark is
	// compared with.
	ConsentGroupID string
	ConsentTopics  []string
	// Keys are the data keys of encrypt rules (package shred): the keys
	// topic and the key-encryption key, needed only when the policy
	// encrypts.
	Keys shred.Settings
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	c := Config{
		Common:      bootstrap.DefaultCommon([]string{"customer.events"}, "consentgate-enforcer"),
		AuditTopic:  "consent.audit",
		CacheSize:   20000,
		CacheMaxAge: 30 * time.Second,
		RequireWarm: true,

		ConsentGroupID: "consentgate-consent-sync",
		ConsentTopics:  []string{"consent.changes"},
		Keys:           shred.DefaultSettings(),
	}
	c.Telemetry.Addr = "127.0.0.1:9464"
	return c
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("enforcer", "reads customer events, checks consent in Redis and publishes per-purpose compliant streams, audit records and dead letters.")
	c.Common.Flags(s, envPrefix)
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML): purposes and streams (required)")
	s.String(&c.AuditTopic, "audit-topic", "AUDIT_TOPIC", "topic of the decision records")
	s.Secret(&c.PseudonymKey, "pseudonymisation-key", "PSEUDONYMISATION_KEY", "key of keyed pseudonymisation (HMAC-SHA-256), at least 16 bytes; required when the policy can pseudonymise (pseudonymise, or mask, truncate_ip, generalise_* on a map's keys)")
	s.Int(&c.Workers, "workers", "ENFORCER_WORKERS", "goroutines that decide a batch; 0 means one per CPU")
	s.Int(&c.CacheSize, "consent-cache-size", "ENFORCER_CONSENT_CACHE_SIZE", "subjects kept in the local consent cache (invalidated through Redis pub/sub); 0 turns it off")
	s.Bool(&c.RequireWarm, "require-warm", "ENFORCER_REQUIRE_WARM", "pause (fail closed) while Redis does not hold the whole consent state: after an empty restart, until consent-sync has rebuilt it")
	s.String(&c.ConsentGroupID, "consent-sync-group-id", "CONSENT_SYNC_GROUP_ID", "consumer group of consent-sync, whose committed offsets the consent state in Redis must have reached (needs Describe on the group)")
	s.List(&c.ConsentTopics, "consent-topics", "CONSENT_SYNC_TOPICS", "consent topics that consent-sync reads (comma-separated)")
	s.Duration(&c.CacheMaxAge, "consent-cache-max-age", "ENFORCER_CONSENT_CACHE_MAX_AGE", "longest a cached consent state is used")
	s.String(&c.PseudonymKeyFile, "pseudonymisation-key-file", "PSEUDONYMISATION_KEY_FILE", "file holding that key instead (surrounding whitespace ignored)")
	c.Keys.Flags(s, true)
	return s
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(envPrefix)}
	if c.Policy == "" {
		errs = append(errs, errors.New("no policy: set POLICY_FILE (or --policy) to the policy YAML file"))
	}
	if c.AuditTopic == "" {
		errs = append(errs, errors.New("empty audit topic: set AUDIT_TOPIC"))
	}
	if c.Workers < 0 || c.Workers > 256 {
		errs = append(errs, errors.New("workers out of range: set ENFORCER_WORKERS to 0 (one per CPU) .. 256"))
	}
	if c.CacheSize < 0 || c.CacheSize > 10_000_000 {
		errs = append(errs, errors.New("consent cache size out of range: set ENFORCER_CONSENT_CACHE_SIZE to 0..10000000"))
	}
	if c.CacheMaxAge <= 0 {
		errs = append(errs, errors.New("consent cache max age must be positive: set ENFORCER_CONSENT_CACHE_MAX_AGE, e.g. 30s"))
	}
	if c.RequireWarm && (c.ConsentGroupID == "" || len(c.ConsentTopics) == 0) {
		errs = append(errs, errors.New("ENFORCER_REQUIRE_WARM needs consent-sync's group and topics: set CONSENT_SYNC_GROUP_ID and CONSENT_SYNC_TOPICS, or ENFORCER_REQUIRE_WARM=false"))
	}
	errs = append(errs, c.Keys.Validate(false)) // the KEK is checked against the policy once it is loaded
	if c.PseudonymKey != "" && c.PseudonymKeyFile != "" {
		errs = append(errs, errors.New("both PSEUDONYMISATION_KEY and PSEUDONYMISATION_KEY_FILE are set: set only one"))
	}
	return errors.Join(errs...)
}

// pseudonymKey returns the configured key, or nil when none is set.
func (c Config) pseudonymKey() ([]byte, error) {
	switch {
	case c.PseudonymKey != "":
		return []byte(c.PseudonymKey), nil
	case c.PseudonymKeyFile != "":
		b, err := os.ReadFile(c.PseudonymKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read PSEUDONYMISATION_KEY_FILE: %w", err)
		}
		key := bytes.TrimSpace(b)
		if len(key) == 0 {
			return nil, errors.New("PSEUDONYMISATION_KEY_FILE is empty: write a secret of at least 16 bytes into it, the same for every enforcer")
		}
		return key, nil
	}
	return nil, nil
}

// LogValue lists the settings with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("policy_file", c.Policy),
		slog.String("audit_topic", c.AuditTopic),
		slog.Int("consent_cache_size", c.CacheSize),
		slog.Int("workers", c.Workers),
		slog.Bool("require_warm", c.RequireWarm),
		slog.String("consent_sync_group_id", c.ConsentGroupID),
		slog.Any("consent_topics", c.ConsentTopics),
		slog.Bool("pseudonymisation_key_set", c.PseudonymKey != "" || c.PseudonymKeyFile != ""),
		slog.Any("keys", slog.GroupValue(c.Keys.LogAttrs()...)))...)
}
