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
