package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestConfigKeysTopic checks the setting of the keys topic: read by
// default, not read when set to empty (flag or variable), a bad name
// refused.
func TestConfigKeysTopic(t *testing.T) {
	kinds := func(c Config) map[string]ledger.TopicKind {
		out := map[string]ledger.TopicKind{}
		for _, tp := range c.Topics() {
			out[tp.Name] = tp.Kind
		}
		return out
	}
	c := DefaultConfig()
	if k, ok := kinds(c)["consent.keys"]; !ok || k != ledger.HoldsKeys {
		t.Errorf("default topics %v: want consent.keys holding data keys", c.Topics())
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"unset":          {want: "consent.keys"},
		"other":          {env: map[string]string{KeysTopicEnv: "tenant.keys"}, want: "tenant.keys"},
		"empty variable": {env: map[string]string{KeysTopicEnv: ""}, want: ""},
		"empty flag":     {args: []string{"--keys-topic="}, want: ""},
		"flag wins":      {env: map[string]string{KeysTopicEnv: ""}, args: []string{"--keys-topic=k2"}, want: "k2"},
	} {
		c := DefaultConfig()
		lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		c.emptyEnvTurnsOff(lookup)
		if err := c.flags().Parse(tc.args, func(k string) string { return tc.env[k] }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.KeysTopic != tc.want {
			t.Errorf("%s: keys topic %q, want %q", name, c.KeysTopic, tc.want)
		}
		_, reads := kinds(c)[tc.want]
		if reads != (tc.want != "") || len(c.Topics()) != len(DefaultConfig().Topics())-btoi(tc.want == "") {
			t.Errorf("%s: topics %v", name, c.Topics())
		}
	}
	c.KeysTopic = "bad topic"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), KeysTopicEnv) {
		t.Errorf("a bad keys topic: %v, want an error naming %s", err, KeysTopicEnv)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestConsumerRecordsDataKeys runs the consumer against a real broker on
// both backends: the keys topic does not exist when it starts (it is found
// at a refresh), a key's record and its tombstone, read by two runs of
// the consumer, make one row with both times, unknown Kafka keys are
// counted and skipped, a third run adds nothing, and the subject's history
// shows the keys.
func TestConsumerRecordsDataKeys(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
			if backend == "postgres" {
				dsn = pgtest.Start(t).DSN
			}
			store, err := ledger.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			broker := brokertest.Start(t, brokertest.Options{Partitions: 2})
			topics := DefaultConfig().Topics()
			run := func() (c *Consumer, stop func()) {
				cctx, cancel := context.WithCancel(ctx)
				c = &Consumer{Brokers: []string{broker.Addr}, Topics: topics, Store: store, Decoder: &ledger.Decoder{},
					BatchSize: 100, Linger: 5 * time.Millisecond, Refresh: 200 * time.Millisecond,
					Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
				done := make(chan struct{})
				go func() { defer close(done); _ = c.Run(cctx) }()
				return c, func() { cancel(); <-done }
			}
			t0 := time.UnixMilli(1_800_000_000_000).UTC()
			at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
			k1, k2, k3 := "key:"+strings.Repeat("1f", 16)+":subject-k", "key:"+strings.Repeat("2e", 16)+":subject-k", "key:"+strings.Repeat("3d", 16)+":subject-k"

			c1, stop := run()
			time.Sleep(500 * time.Millisecond) // a refresh or two without the topic
			broker.CreateTopics(t, 2, "consent.keys")
			produce(t, broker.Addr, []kafka.Message{
				{Topic: "consent.keys", Key: []byte(k1), Value: []byte("wrapped key one"), Time: at(1)},
				{Topic: "consent.keys", Key: []byte(k2), Value: []byte("wrapped key two"), Time: at(2)},
				{Topic: "consent.keys", Key: []byte("subject-k"), Value: []byte("stray"), Time: at(3)},
			})
			waitKeys(t, store, 3)
			stop()
			if n := c1.Stats().UnknownKeys; n != 1 {
				t.Errorf("first run: %d unknown keys counted, want 1", n)
			}

			produce(t, broker.Addr, []kafka.Message{
				{Topic: "consent.keys", Key: []byte("erased:subject-k"), Value: []byte("marker"), Time: at(10)},
				{Topic: "consent.keys", Key: []byte(k1), Time: at(11)},
				{Topic: "consent.keys", Key: []byte(k2), Time: at(12)},
				{Topic: "consent.keys", Key: []byte(k3), Time: at(13)},
			})
			_, stop = run()
			waitKeys(t, store, 7)
			stop()
			st, err := store.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Tables["data_keys"] != 3 || st.Tables["key_erasures"] != 1 {
				t.Fatalf("tables %v: want 3 data keys and 1 key erasure", st.Tables)
			}
			h, err := store.Subject(ctx, "subject-k")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, k := range h.DataKeys {
				got["key:"+k.KeyID+":subject-k"] = ts(k.CreatedAt, t0) + " " + ts(k.DestroyedAt, t0)
			}
			want := map[string]string{k1: "1s 11s", k2: "2s 12s", k3: "- 13s"}
			if len(got) != len(want) {
				t.Errorf("keys %v, want %v", got, want)
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s: created, destroyed %q, want %q", k, got[k], w)
				}
			}
			if len(h.KeyErasures) != 1 || !h.KeyErasures[0].At.Equal(at(10)) {
				t.Errorf("key erasures %+v, want one at %v", h.KeyErasures, at(10))
			}

			// A third run from the stored positions adds nothing.
			before := historyJSON(t, h)
			_, stop = run()
			time.Sleep(time.Second)
			stop()
			h2, err := store.Subject(ctx, "subject-k")
			if err != nil {
				t.Fatal(err)
			}
			st2, err := store.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if after := historyJSON(t, h2); after != before || st2.Tables["data_keys"] != 3 || st2.Tables["key_erasures"] != 1 {
				t.Errorf("a restart changed the ledger: %v\n%s\nvs\n%s", st2.Tables, before, after)
			}
		})
	}
}

func ts(t *time.Time, t0 time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Sub(t0).String()
}

func historyJSON(t *testing.T, h *ledger.SubjectHistory) string {
	t.Helper()
	c := *h
	c.AsOf = time.Time{}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitKeys waits until the ledger's positions on consent.keys cover want
// records.
func waitKeys(t *testing.T, s *ledger.Store, want int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pos, err := s.Positions(context.Background(), "consent.keys")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range pos {
			n += p
		}
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger covers %d of %d records of consent.keys", n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
