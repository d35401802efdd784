package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The signals topic and group against the other settings: every clash is
// refused, saying what to set; off (or a rebuild) checks nothing.
func TestConfigValidateSignals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		wants []string // parts of the error; none: valid
	}{
		{"defaults: on", nil, nil},
		{"off", []string{"--signals-topic", "off"}, nil},
		{"off by an empty flag", []string{"--signals-topic="}, nil},
		{"own topic and group", []string{"--signals-topic", "shop.signals", "--signals-group-id", "shop-signals"}, nil},
		{"the consent topic", []string{"--signals-topic", "consent.changes"}, []string{"CONSENT_SIGNALS_TOPIC consent.changes is also CONSENT_SYNC_TOPICS"}},
		{"the intake topic", []string{"--signals-topic", "in", "--intake-topic", "in"}, []string{"is also CONSENT_INTAKE_TOPIC"}},
		{"the revocations topic", []string{"--signals-topic", "consent.revocations"}, []string{"is also REVOCATIONS_TOPIC"}},
		{"the keys topic", []string{"--signals-topic", "consent.keys"}, []string{"is also KEYS_TOPIC"}},
		{"the consent topic's dead letters", []string{"--signals-topic", "consent.changes.dlq"}, []string{"would share dead letters"}},
		{"consent-sync's group", []string{"--signals-group-id", "consentgate-consent-sync"}, []string{"CONSENT_SIGNALS_GROUP_ID is CONSENT_SYNC_GROUP_ID"}},
		{"no group", []string{"--signals-group-id="}, []string{"set CONSENT_SIGNALS_GROUP_ID"}},
		{"bad topic", []string{"--signals-topic", "a b"}, []string{"fix CONSENT_SIGNALS_TOPIC"}},
		{"rebuild ignores it", []string{"--rebuild", "--signals-topic", "consent.changes"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			env := map[string]string{"REDIS_ADDR": "127.0.0.1:6379"}
			if err := cfg.flags().Parse(tc.args, func(k string) string { return env[k] }); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %v", tc.args)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// With a signals topic set by hand, consent-sync does not start without a
// policy that has a signals section, and says what to set; on the default
// topic the consumer is then off; off, or with such a policy, it goes on (here to Redis, which the cancelled context makes
// fail at once); a rebuild does not need it.
func TestStartRequiresSignalsPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	noSignals := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(noSignals, []byte("purposes:\n  - id: marketing\nstreams:\n  - purposes: [marketing]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	example := filepath.Join("..", "..", "pkg", "policy", "testdata", "example.yaml")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"policy without signals, default topic: the consumer is off", []string{"--policy", noSignals}, "connect to redis"},
		{"no policy, default topic: the consumer is off", []string{"--purposes", "marketing"}, "connect to redis"},
		{"policy without signals, topic set", []string{"--policy", noSignals, "--signals-topic", "web.signals"}, "the policy (POLICY_FILE) has no signals section"},
		{"no policy, topic set", []string{"--purposes", "marketing", "--signals-topic", "web.signals"}, "POLICY_FILE is not set"},
		{"off", []string{"--policy", noSignals, "--signals-topic", "off"}, "connect to redis"},
		{"policy with signals", []string{"--policy", example}, "connect to redis"},
		{"rebuild", []string{"--policy", noSignals, "--rebuild"}, "connect to redis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := run(ctx, log, append([]string{"--redis-addr", "127.0.0.1:1"}, tc.args...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(tc.want, "signals section") || strings.Contains(tc.want, "POLICY_FILE is not") {
				for _, w := range []string{"CONSENT_SIGNALS_TOPIC=off", "set POLICY_FILE to a policy with a signals: section"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			}
		})
	}
}
