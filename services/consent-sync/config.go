package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/envflag"
)

// envPrefix names consent-sync's own variables (CONSENT_SYNC_TOPICS, …).
const envPrefix = "CONSENT_SYNC_"

// Config is consent-sync's configuration.
type Config struct {
	bootstrap.Common
	Policy           string
	RevocationsTopic string
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	c := Config{
		Common:           bootstrap.DefaultCommon([]string{"consent.changes"}, "consentgate-consent-sync"),
		RevocationsTopic: "consent.revocations",
	}
	// Withdrawals must reach Redis fast: wait less for more changes.
	c.Input.MaxWait = 100 * time.Millisecond
	c.Linger = 2 * time.Millisecond
	return c
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("consent-sync", "applies consent changes from Kafka to the consent state in Redis (newest captured_at wins) and publishes revocation notices.")
	c.Common.Flags(s, envPrefix)
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML); when set, changes for purposes it does not declare are counted and reported")
	s.String(&c.RevocationsTopic, "revocations-topic", "REVOCATIONS_TOPIC", "topic of the revocation notices")
	return s
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(envPrefix)}
	if c.RevocationsTopic == "" {
		errs = append(errs, errors.New("empty revocations topic: set REVOCATIONS_TOPIC"))
	}
	return errors.Join(errs...)
}

// LogValue lists the settings with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("policy_file", c.Policy),
		slog.String("revocations_topic", c.RevocationsTopic))...)
}
