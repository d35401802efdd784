package bootstrap

import (
	"strings"
	"testing"
	"time"
)

func TestCommonValidate(t *testing.T) {
	t.Parallel()
	good := DefaultCommon([]string{"in"}, "g")
	good.Redis.Addrs = []string{"127.0.0.1:6379"}
	tests := []struct {
		name  string
		edit  func(*Common)
		wants []string
	}{
		{"defaults with redis are fine", func(*Common) {}, nil},
		{"no redis", func(c *Common) { c.Redis.Addrs = nil }, []string{"REDIS_ADDR"}},
		{"a prefix with letters, digits and : - _ . is fine", func(c *Common) { c.ConsentPrefix = "tenant-a_1.x:" }, nil},
		{"prefix with *", func(c *Common) { c.ConsentPrefix = "t*:" }, []string{"CONSENT_KEY_PREFIX"}},
		{"prefix with ?", func(c *Common) { c.ConsentPrefix = "t?:" }, []string{"CONSENT_KEY_PREFIX"}},
		{"prefix with [", func(c *Common) { c.ConsentPrefix = "t[ab]:" }, []string{"CONSENT_KEY_PREFIX"}},
		{"prefix with ]", func(c *Common) { c.ConsentPrefix = "t]:" }, []string{"CONSENT_KEY_PREFIX"}},
		{"prefix with a brace", func(c *Common) { c.ConsentPrefix = "t{a}:" }, []string{"CONSENT_KEY_PREFIX"}},
		{"prefix with a backslash", func(c *Common) { c.ConsentPrefix = `t\:` }, []string{"CONSENT_KEY_PREFIX"}},
		{"every problem at once", func(c *Common) {
			c.Kafka.Brokers = nil
			c.Input.Topics = nil
			c.BatchSize = 0
			c.Linger = -time.Second
			c.DrainTimeout = 0
			c.DLQSuffix = ""
			c.RegistryURL = "ftp://x"
			c.SchemasDir = "/does/not/exist"
		}, []string{"KAFKA_BROKERS", "SVC_TOPICS", "SVC_BATCH_SIZE", "SVC_LINGER", "SVC_DRAIN_TIMEOUT", "DLQ_SUFFIX", "SCHEMA_REGISTRY_URL", "SCHEMAS_DIR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := good
			c.Redis.Addrs = append([]string(nil), good.Redis.Addrs...)
			tt.edit(&c)
			err := c.Validate("SVC_")
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one naming %v", tt.wants)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %s:\n%v", w, err)
				}
			}
		})
	}
}

func TestCodecLoadsBuiltInSchemas(t *testing.T) {
	t.Parallel()
	c := DefaultCommon([]string{"in"}, "g")
	codec, err := c.Codec()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"consentgate.audit.AuditRecord", "consentgate.consent.ConsentChange", "consentgate.consent.RevocationNotice", "consentgate.events.PageView"} {
		if _, ok := codec.SchemaByName(name); !ok {
			t.Errorf("built-in schemas lack %s", name)
		}
	}
	c.SchemasDir = t.TempDir()
	if _, err := c.Codec(); err == nil {
		t.Error("an empty schemas folder loaded without error")
	}
}
