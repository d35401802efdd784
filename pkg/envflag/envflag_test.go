package envflag

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

type cfg struct {
	Brokers []string
	Group   string
	Batch   int
	Wait    time.Duration
	Debug   bool
	Key     string
}

func newSet(c *cfg) *Set {
	s := New("svc", "does things")
	s.List(&c.Brokers, "kafka-brokers", "KAFKA_BROKERS", "brokers")
	s.String(&c.Group, "group", "GROUP_ID", "group")
	s.Int(&c.Batch, "batch", "BATCH", "batch size")
	s.Duration(&c.Wait, "wait", "WAIT", "wait")
	s.Bool(&c.Debug, "debug", "", "debug")
	s.Secret(&c.Key, "key", "KEY", "secret key")
	return s
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    cfg
		wantErr []string
	}{
		{name: "defaults", want: cfg{Brokers: []string{"d:1"}, Group: "g", Batch: 10, Wait: time.Second}},
		{name: "env", env: map[string]string{"KAFKA_BROKERS": "a:1, b:2,", "BATCH": "5", "WAIT": "20ms"},
			want: cfg{Brokers: []string{"a:1", "b:2"}, Group: "g", Batch: 5, Wait: 20 * time.Millisecond}},
		{name: "flag wins over env", env: map[string]string{"GROUP_ID": "from-env"}, args: []string{"--group", "from-flag", "--debug"},
			want: cfg{Brokers: []string{"d:1"}, Group: "from-flag", Batch: 10, Wait: time.Second, Debug: true}},
		{name: "all bad values reported", env: map[string]string{"BATCH": "lots", "WAIT": "forever"},
			wantErr: []string{"BATCH: not a whole number", "WAIT: not a duration"}},
		{name: "bad flag", args: []string{"--nope"}, wantErr: []string{"flag provided but not defined", "--help"}},
		{name: "stray argument", args: []string{"extra"}, wantErr: []string{"1 unexpected argument(s), from position 1 on (not shown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := cfg{Brokers: []string{"d:1"}, Group: "g", Batch: 10, Wait: time.Second}
			err := newSet(&c).Parse(tt.args, func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if strings.Join(c.Brokers, ",") != strings.Join(tt.want.Brokers, ",") || c.Group != tt.want.Group ||
				c.Batch != tt.want.Batch || c.Wait != tt.want.Wait || c.Debug != tt.want.Debug {
				t.Errorf("got %+v, want %+v", c, tt.want)
			}
		})
	}
}

func TestHelpListsEverySettingAndMasksSecrets(t *testing.T) {
	t.Parallel()
	c := cfg{Brokers: []string{"127.0.0.1:9092"}, Key: "s3cret"}
	s := newSet(&c)
	if err := s.Parse([]string{"--help"}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help returned %v, want flag.ErrHelp", err)
	}
	var b bytes.Buffer
	s.PrintUsage(&b)
	out := b.String()
	for _, w := range []string{"--kafka-brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "--group", "GROUP_ID", "--batch", "--wait", "--debug", "--key", "(set)"} {
		if !strings.Contains(out, w) {
			t.Errorf("help lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("help prints a secret:\n%s", out)
	}
}

// TestOptBool: an OptBool tells unset from false; its flag alone means
// true (like a Bool's), the flag wins over the variable, and a value that
// is not true or false is refused without being shown, from the variable
// or the flag.
func TestOptBool(t *testing.T) {
	t.Parallel()
	const secret = "pw-Zq7x"
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		val, set bool
		wantErr  string
	}{
		{name: "unset"},
		{name: "empty variable is unset", env: map[string]string{"TLS": ""}},
		{name: "variable false", env: map[string]string{"TLS": "false"}, set: true},
		{name: "variable true", env: map[string]string{"TLS": " 1 "}, val: true, set: true},
		{name: "flag alone", args: []string{"--tls"}, val: true, set: true},
		{name: "flag alone, one dash", args: []string{"-tls"}, val: true, set: true},
		{name: "flag false", args: []string{"--tls=false"}, set: true},
		{name: "flag wins over variable", env: map[string]string{"TLS": "true"}, args: []string{"--tls=false"}, set: true},
		{name: "flag alone wins over variable false", env: map[string]string{"TLS": "false"}, args: []string{"--tls"}, val: true, set: true},
		{name: "bad variable", env: map[string]string{"TLS": secret}, wantErr: "TLS: not true or false (the value is not shown)"},
		{name: "bad flag", args: []string{"--tls=" + secret}, wantErr: "--tls: not true or false (the value is not shown)"},
		{name: "bad flag and a stray argument", args: []string{"--tls=" + secret, secret}, wantErr: "--tls: not true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b OptBool
			s := New("svc", "does things")
			s.OptBool(&b, "tls", "TLS", "TLS on or off; unset: decided by the other settings")
			err := s.Parse(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse: %v, want an error with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if val, set := b.Get(); val != tt.val || set != tt.set {
				t.Errorf("Get() = %v, %v; want %v, %v", val, set, tt.val, tt.set)
			}
		})
	}
}
