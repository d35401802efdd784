package main

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		wants []string // parts of the error; none: valid
	}{
		{"defaults", nil, nil},
		{"rebuild", []string{"--rebuild"}, nil},
		{"rebuild forced", []string{"--rebuild", "--rebuild-force"}, nil},
		{"intake with tokens and a policy", []string{"--intake-addr", "127.0.0.1:8081", "--intake-tokens-file", "/run/tokens", "--policy", "policy.yaml"}, nil},
		{"intake, insecure, purposes", []string{"--intake-addr", "127.0.0.1:8081", "--intake-insecure", "--purposes", "marketing,ads"}, nil},
		{"intake without authentication", []string{"--intake-addr", "127.0.0.1:8081", "--purposes", "marketing"},
			[]string{"has no authentication", "CONSENT_INTAKE_TOKENS_FILE", "CONSENT_INTAKE_INSECURE=true"}},
		{"intake without a catalogue", []string{"--intake-addr", "127.0.0.1:8081", "--intake-insecure"},
			[]string{"set POLICY_FILE", "CONSENT_PURPOSES"}},
		{"policy and purposes", []string{"--policy", "p.yaml", "--purposes", "marketing"}, []string{"POLICY_FILE and CONSENT_PURPOSES are both set"}},
		{"bad purpose id", []string{"--purposes", "marketing,Sub Ject@x"}, []string{"CONSENT_PURPOSES item 2 is not a purpose id"}},
		{"force alone", []string{"--rebuild-force"}, []string{"CONSENT_SYNC_REBUILD_FORCE without CONSENT_SYNC_REBUILD"}},
		{"rebuild with intake", []string{"--rebuild", "--intake-addr", "127.0.0.1:8081", "--intake-insecure", "--purposes", "m"}, []string{"CONSENT_INTAKE_ADDR is set with CONSENT_SYNC_REBUILD"}},
		{"every problem at once", []string{"--rebuild-force", "--intake-addr", "nope", "--intake-max-body", "1"},
			[]string{"CONSENT_SYNC_REBUILD_FORCE", "CONSENT_INTAKE_ADDR", "CONSENT_INTAKE_MAX_BODY"}},
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

func TestIntakeTopicDefaultsToInput(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	if got := cfg.IntakeTopic(); got != "consent.changes" {
		t.Errorf("IntakeTopic() = %q, want consent.changes", got)
	}
	cfg.Intake.Topic = "other"
	if got := cfg.IntakeTopic(); got != "other" {
		t.Errorf("IntakeTopic() = %q, want other", got)
	}
}

func TestLogSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"marketing":                   "marketing",
		"subject-4711@example.com":    "(not a purpose id: 24 bytes, sha256 ",
		"evil\n{\"level\":\"ERROR\"}": "(not a purpose id: 22 bytes, sha256 ",
		strings.Repeat("a", 65):       "(not a purpose id: 65 bytes, sha256 ",
	} {
		got := logSafe(in)
		if !strings.HasPrefix(got, want) {
			t.Errorf("logSafe(%q) = %q, want %q...", in, got, want)
		}
		if in != "marketing" && strings.Contains(got, in) {
			t.Errorf("logSafe(%q) = %q shows the string", in, got)
		}
	}
}

// Crypto-shredding has no off switch in consent-sync: with KEYS_TOPIC
// empty an erasure would mark no data key, and a key made before it would
// outlive it (the second review's TestReview2ShredEraseWhileKeysTopicWasOffIsNeverMarked).
func TestKeysTopicCannotBeTurnedOff(t *testing.T) {
	c := DefaultConfig()
	c.Keys.Topic = ""
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "set KEYS_TOPIC") {
		t.Fatalf("Validate with KEYS_TOPIC empty = %v, want a refusal saying to set KEYS_TOPIC", err)
	}
}
