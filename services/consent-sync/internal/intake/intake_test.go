package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

func newCodec(t *testing.T) *avrocodec.Codec {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return avrocodec.New(cat, nil)
}

type answer struct {
	code int
	body map[string]any
}

func post(t *testing.T, url, method, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("answer Content-Type %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return answer{resp.StatusCode, m}
}

// TestHandler runs the real handler against a real broker process: a valid
// change is produced (key = subject, single-object Avro) and answered 202
// with its coordinates; every rejected request produces nothing.
func TestHandler(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 3})
	const topic = "intake.test"
	broker.CreateTopics(t, 3, topic)
	codec := newCodec(t)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	h := New(Options{Topic: topic, MaxBodyBytes: 2048, ProduceTimeout: 10 * time.Second, Purposes: catalogue}, codec, kc)
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	t.Run("rejected", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, contentType, body string
			code                            int
			fields                          []string
		}{
			{"missing fields", http.MethodPost, "application/json", `{"subject_id":"s","action":"GRANT","purpose":"p"}`, 400,
				[]string{"change_id", "legal_basis", "source", "notice_version", "captured_at"}},
			{"invalid JSON", http.MethodPost, "application/json", `{"change_id"`, 400, []string{""}},
			{"GET", http.MethodGet, "", ``, 405, []string{""}},
			{"text/plain", http.MethodPost, "text/plain", validGrant, 415, []string{""}},
			{"no content type", http.MethodPost, "", validGrant, 415, []string{""}},
			{"latin-1", http.MethodPost, "application/json; charset=iso-8859-1", validGrant, 415, []string{""}},
			{"too large", http.MethodPost, "application/json", `{"source":"` + strings.Repeat("x", 4096) + `"}`, 413, []string{""}},
			{"over-long ids", http.MethodPost, "application/json", strings.Replace(strings.Replace(validGrant, `"c1"`, `"`+strings.Repeat("c", 257)+`"`, 1),
				`"s1"`, `"`+strings.Repeat("s", 300)+`"`, 1), 400, []string{"change_id", "subject_id"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := post(t, srv.URL, tc.method, tc.contentType, tc.body)
				if a.code != tc.code {
					t.Fatalf("status %d, want %d (%v)", a.code, tc.code, a.body)
				}
				list, _ := a.body["errors"].([]any)
				var fields []string
				for _, e := range list {
					f, _ := e.(map[string]any)["field"].(string)
					fields = append(fields, f)
					if r, _ := e.(map[string]any)["reason"].(string); r == "" {
						t.Errorf("problem without a reason: %v", e)
					}
				}
				if fmt.Sprint(fields) != fmt.Sprint(tc.fields) {
					t.Errorf("fields %q, want %q", fields, tc.fields)
				}
				if b := fmt.Sprint(a.body); strings.Contains(b, "cccc") || strings.Contains(b, "ssss") {
					t.Errorf("the answer repeats an id: %s", b)
				}
			})
		}
	})

	t.Run("accepted", func(t *testing.T) {
		a := post(t, srv.URL, http.MethodPost, "application/json; charset=utf-8", validGrant)
		if a.code != http.StatusAccepted {
			t.Fatalf("status %d, want 202 (%v)", a.code, a.body)
		}
		if a.body["change_id"] != "c1" || a.body["topic"] != topic {
			t.Errorf("answer %v", a.body)
		}
		part, off := int(a.body["partition"].(float64)), int64(a.body["offset"].(float64))
		if part < 0 || off < 0 {
			t.Fatalf("answer lacks coordinates: %v", a.body)
		}
		// The same murmur2 partitioning as every producer of the topic.
		want := (&kafka.Murmur2Balancer{Consistent: true}).Balance(kafka.Message{Key: []byte("s1")}, 0, 1, 2)
		if part != want {
			t.Errorf("partition %d, want %d (murmur2 of the subject)", part, want)
		}
	})

	// Everything on the topic: exactly the accepted change, where the answer
	// said, keyed by subject, decoding to the posted change.
	msgs := broker.ReadAll(t, topic, 500*time.Millisecond, 20*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("topic holds %d records, want only the accepted one", len(msgs))
	}
	m := msgs[0]
	if string(m.Key) != "s1" || m.Offset != 0 {
		t.Errorf("record key %q at offset %d", m.Key, m.Offset)
	}
	rec, err := codec.Decode(context.Background(), m.Value)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Framing != avrocodec.FramingSingleObject || rec.Schema.FullName != ChangeSchema {
		t.Errorf("record framing %v schema %s", rec.Framing, rec.Schema.FullName)
	}
	if id, _ := avrocodec.StringField(rec.Value, "change_id"); id != "c1" {
		t.Errorf("record change_id %q", id)
	}
	if got := h.Accepted.Load(); got != 1 {
		t.Errorf("accepted %d", got)
	}
	if got := h.Rejected.Load(); got != 8 {
		t.Errorf("rejected %d, want 8", got)
	}
}

// TestHandlerBrokerDown answers 503 when no broker acknowledges in time.
func TestHandlerBrokerDown(t *testing.T) {
	t.Parallel()
	kc := stream.DefaultConfig()
	kc.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))} // nothing listens
	kc.WriteTimeout = time.Second
	h := New(Options{Topic: "consent.changes", ProduceTimeout: 1500 * time.Millisecond, Log: slog.New(slog.DiscardHandler), Purposes: catalogue}, newCodec(t), kc)
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	start := time.Now()
	a := post(t, srv.URL, http.MethodPost, "application/json", validGrant)
	if a.code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 (%v)", a.code, a.body)
	}
	if _, ok := a.body["offset"]; ok {
		t.Errorf("a 503 claims an offset: %v", a.body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("answered after %v, want within the produce timeout", d)
	}
	if h.Unavailable.Load() != 1 {
		t.Errorf("unavailable %d, want 1", h.Unavailable.Load())
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"off", DefaultConfig(), ""},
		{"on, insecure", Config{Addr: "127.0.0.1:8081", MaxBodyBytes: DefaultMaxBodyBytes, Insecure: true}, ""},
		{"on with tokens", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TokensFile: "tokens"}, ""},
		{"on with mutual TLS", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TLSCertFile: "c", TLSKeyFile: "k", TLSClientCAFile: "ca"}, ""},
		{"on without authentication", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes}, "set CONSENT_INTAKE_TOKENS_FILE"},
		{"TLS alone is not authentication", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TLSCertFile: "c", TLSKeyFile: "k"}, "CONSENT_INTAKE_INSECURE=true"},
		{"cert without key", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TokensFile: "t", TLSCertFile: "c"}, "go together"},
		{"client CA without cert", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TLSClientCAFile: "ca"}, "mutual TLS is TLS"},
		{"no port", Config{Addr: "localhost", MaxBodyBytes: DefaultMaxBodyBytes, Insecure: true}, "CONSENT_INTAKE_ADDR"},
		{"bad topic", Config{Topic: "a b", MaxBodyBytes: DefaultMaxBodyBytes}, "CONSENT_INTAKE_TOPIC"},
		{"tiny body", Config{MaxBodyBytes: 10}, "CONSENT_INTAKE_MAX_BODY"},
		{"reload every 10m", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TokensFile: "t", ReloadInterval: 10 * time.Minute}, "CONSENT_INTAKE_RELOAD_INTERVAL"},
		{"negative reload", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TokensFile: "t", ReloadInterval: -time.Second}, "CONSENT_INTAKE_RELOAD_INTERVAL"},
		{"reload every second", Config{Addr: ":8081", MaxBodyBytes: DefaultMaxBodyBytes, TokensFile: "t", ReloadInterval: time.Second}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
