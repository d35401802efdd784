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
		{"intake", []string{"--intake-addr", "127.0.0.1:8081"}, nil},
		{"force alone", []string{"--rebuild-force"}, []string{"CONSENT_SYNC_REBUILD_FORCE without CONSENT_SYNC_REBUILD"}},
		{"rebuild with intake", []string{"--rebuild", "--intake-addr", "127.0.0.1:8081"}, []string{"CONSENT_INTAKE_ADDR is set with CONSENT_SYNC_REBUILD"}},
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
