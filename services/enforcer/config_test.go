package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/schemas"
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
)

// Secrets of the configuration tests: each must stay out of every error
// and log line.
const (
	redisSecret  = "rEdIsUrLsEcReT"
	redisPwd     = "rEdIsPaSsWoRd"
	pseudonymKey = "pSeUdOnYmKeY-0123456789"
)

func noSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{redisSecret, redisPwd, pseudonymKey} {
		if strings.Contains(text, s) {
			t.Errorf("%s shows the secret %q:\n%s", what, s, text)
		}
	}
}

// TestConfigNeverShowsSecrets: the start-up config log, --help and every
// configuration error, with secrets set in every secret setting and also
// put where they do not belong.
func TestConfigNeverShowsSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"POLICY_FILE":          "policy.yaml",
		"REDIS_URL":            "redis://:" + redisSecret + "@127.0.0.1:6379/0",
		"PSEUDONYMISATION_KEY": pseudonymKey,
	}
	getenv := func(k string) string { return env[k] }

	cfg := DefaultConfig()
	if err := cfg.flags().Parse(nil, getenv); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("starting", "config", cfg)
	noSecret(t, "the start-up config log", b.String())
	if !strings.Contains(b.String(), `"redis_url_set":true`) || !strings.Contains(b.String(), `"pseudonymisation_key_set":true`) {
		t.Errorf("the start-up log does not say which secrets are set:\n%s", b.String())
	}
	b.Reset()
	cfg.flags().PrintUsage(&b)
	noSecret(t, "--help", b.String())

	bad := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{name: "password without host", env: map[string]string{"REDIS_URL": "redis://:" + redisSecret}},
		{name: "password in the query", env: map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0?pool_fifo=" + redisSecret}},
		{name: "password as database", env: map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/" + redisSecret}},
		{name: "URL in REDIS_ADDR with REDIS_PASSWORD", env: map[string]string{"REDIS_URL": "", "REDIS_ADDR": "redis://:" + redisSecret + "@h:6379", "REDIS_PASSWORD": redisPwd}},
		{name: "both key settings", env: map[string]string{"PSEUDONYMISATION_KEY_FILE": "/k"}},
		{name: "secret as a stray argument", args: []string{"--redis-url=", "redis://:" + redisSecret + "@h:6379"}},
		{name: "key as a stray argument", args: []string{"--pseudonymisation-key", pseudonymKey, pseudonymKey}},
		{name: "every problem at once", env: map[string]string{"REDIS_URL": "redis://u:" + redisSecret + "/x@h", "REDIS_ADDR": "u:" + redisPwd + "@h:1",
			"PSEUDONYMISATION_KEY_FILE": "/k", "AUDIT_TOPIC": "", "ENFORCER_CONSENT_CACHE_MAX_AGE": "-1s"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			for k, v := range tc.env {
				e[k] = v
			}
			cfg := DefaultConfig()
			err := cfg.flags().Parse(tc.args, func(k string) string { return e[k] })
			if verr := cfg.Validate(); verr != nil {
				if err != nil {
					err = fmt.Errorf("%w\n%w", err, verr)
				} else {
					err = verr
				}
			}
			if err == nil {
				t.Fatal("no configuration error")
			}
			noSecret(t, "the configuration error", err.Error())
		})
	}
}

// mapSchema is an event schema with a map whose keys are personal data.
const mapSchema = `{
  "type": "record", "name": "Preferences", "namespace": "consentgate.events",
  "fields": [
    {"name": "event_id", "type": "string"},
    {"name": "subject_id", "type": "string", "data_category": "user.id"},
    {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "contacts", "type": {"type": "map", "values": "string"}, "data_category": "user.behavior.browsing"}
  ]
}`

// maskPolicy never names pseudonymise, but masks a category a map field
// has: masking a map pseudonymises its keys.
const maskPolicy = `
purposes:
  - id: analytics
streams:
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    treatments:
      - category: user.behavior.*
        action: mask
    default_treatment: remove
`

func loadPolicy(t *testing.T, text string) *policy.Policy {
	t.Helper()
	pol, err := policy.Parse([]byte(text), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// TestStartupNeedsKeyWhenMapKeysArePseudonymised: a policy without
// pseudonymise whose rewriting action may apply to a map needs the
// configured key: start-up without it stops, naming the setting.
func TestStartupNeedsKeyWhenMapKeysArePseudonymised(t *testing.T) {
	t.Parallel()
	pol := loadPolicy(t, maskPolicy)
	_, err := newRedactor(DefaultConfig(), pol)
	if err == nil {
		t.Fatal("the enforcer starts without a pseudonymisation key for a policy that pseudonymises map keys")
	}
	if !strings.Contains(err.Error(), "PSEUDONYMISATION_KEY_FILE") {
		t.Errorf("start-up error does not name PSEUDONYMISATION_KEY_FILE: %v", err)
	}

	// A policy that only keeps and removes never makes a pseudonym: it
	// starts without a key.
	keepRemove := loadPolicy(t, strings.ReplaceAll(maskPolicy, "action: mask", "action: keep"))
	if _, err := newRedactor(DefaultConfig(), keepRemove); err != nil {
		t.Errorf("a keep/remove policy needs a key: %v", err)
	}
}

// TestInstancesAgreeOnPseudonyms: two enforcers started with the same key
// file publish the same redacted bytes, map keys included.
func TestInstancesAgreeOnPseudonyms(t *testing.T) {
	t.Parallel()
	files := fstest.MapFS{"preferences.v1.avsc": {Data: []byte(mapSchema)}}
	if err := fs.WalkDir(schemas.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".avsc") || strings.Contains(p, "/") {
			return err
		}
		b, err := fs.ReadFile(schemas.FS, p)
		files[p] = &fstest.MapFile{Data: b}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(files)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	pol := loadPolicy(t, maskPolicy)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(pseudonymKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	value, err := codec.EncodeSingle("consentgate.events.Preferences", map[string]any{
		"event_id": "e-1", "subject_id": "s-1", "occurred_at": time.UnixMilli(1_700_000_000_000),
		"contacts": map[string]any{"jane.roe@mail.example": "friend", "+33 6 12 34 56 78": "mother"},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := []kafka.Message{{Topic: "customer.events", Key: []byte("s-1"), Value: value}}
	var outputs [][]byte
	for i := 0; i < 2; i++ {
		cfg := DefaultConfig()
		cfg.PseudonymKeyFile = keyFile
		red, err := newRedactor(cfg, pol)
		if err != nil {
			t.Fatal(err)
		}
		e := enforce.New(enforce.Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red}, codec, store, pol)
		out, err := e.Process(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out {
			if m.Topic == "compliant.analytics" {
				outputs = append(outputs, m.Value)
			}
		}
	}
	if len(outputs) != 2 {
		t.Fatalf("%d redacted copies from two instances, want 2", len(outputs))
	}
	// Compared decoded: Avro writes map entries in any order.
	var values []map[string]any
	for _, b := range outputs {
		rec, err := codec.Decode(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, rec.Value)
	}
	if !reflect.DeepEqual(values[0], values[1]) {
		t.Errorf("two enforcers with the same key publish different pseudonyms:\n%v\n%v", values[0], values[1])
	}
	contacts, _ := avrocodec.Field(values[0], "contacts")
	if len(contacts.(map[string]any)) != 2 {
		t.Errorf("contacts %v, want two entries", contacts)
	}
	for k := range contacts.(map[string]any) {
		if strings.Contains(k, "jane") || strings.Contains(k, "34 56") || len(k) != 64 {
			t.Errorf("map key %q is not a pseudonym", k)
		}
	}
}
