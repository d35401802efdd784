package main

import (
	"errors"
	"log/slog"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/envflag"
)

// envPrefix names the enforcer's own variables (ENFORCER_TOPICS, …).
const envPrefix = "ENFORCER_"

// Config is the enforcer's configuration.
type Config struct {
	bootstrap.Common
	Policy     string
	AuditTopic string
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Common:     bootstrap.DefaultCommon([]string{"customer.events"}, "consentgate-enforcer"),
		AuditTopic: "consent.audit",
	}
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("enforcer", "reads customer events, checks consent in Redis and publishes per-purpose compliant streams, audit records and dead letters.")
	c.Common.Flags(s, envPrefix)
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML): purposes and streams (required)")
	s.String(&c.AuditTopic, "audit-topic", "AUDIT_TOPIC", "topic of the decision records")
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
	return errors.Join(errs...)
}

// LogValue lists the settings with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("policy_file", c.Policy),
		slog.String("audit_topic", c.AuditTopic))...)
}
