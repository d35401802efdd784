package stack

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// TestLocalStack starts the local stack through Start (forced by the
// environment variable) and uses everything the e2e tests use: the
// topics, produce and read through a client-only brokertest handle (what
// the container stack hands out), a broker restart that keeps the log and
// the address, and a Redis kill and empty restart on the same address.
func TestLocalStack(t *testing.T) {
	t.Setenv(EnvVar, "local")
	s := Start(t, Options{Partitions: 2, Topics: []string{"st.extra"}, RestartableBroker: true})
	if s.Name() != "local" || s.LocalRedis() == nil {
		t.Fatalf("Start with %s=local gave %s (local redis %v)", EnvVar, s.Name(), s.LocalRedis())
	}
	if d := s.Describe(); !strings.Contains(d, s.Brokers()[0]) || !strings.Contains(d, s.RedisAddr()) {
		t.Errorf("Describe %q does not name the addresses", d)
	}
	addr := s.Brokers()[0]
	s.CreateTopics(t, 3, "st.created")

	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	meta, err := client.Metadata(t.Context(), &kafka.MetadataRequest{Topics: append(append([]string{}, DefaultTopics...), "st.extra", "st.created")})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]int{}
	for _, tp := range meta.Topics {
		if tp.Error == nil {
			parts[tp.Name] = len(tp.Partitions)
		}
	}
	for _, tp := range append(append([]string{}, DefaultTopics...), "st.extra") {
		if parts[tp] != 2 {
			t.Errorf("topic %s has %d partitions, want 2 (Options.Partitions)", tp, parts[tp])
		}
	}
	if parts["st.created"] != 3 {
		t.Errorf("topic st.created has %d partitions, want 3", parts["st.created"])
	}

	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "st.extra", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("a"), Value: []byte("1")}, kafka.Message{Key: []byte("b"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	view := &brokertest.Broker{Addr: addr}
	if got := view.ReadAll(t, "st.extra", 300*time.Millisecond, 10*time.Second); len(got) != 2 {
		t.Fatalf("a client-only brokertest handle read %d records, want 2", len(got))
	}

	s.RestartBroker(t)
	if s.Brokers()[0] != addr {
		t.Errorf("the broker address changed across the restart: %s, then %s", addr, s.Brokers()[0])
	}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("c"), Value: []byte("3")}); err != nil {
		t.Fatalf("produce after the broker restart: %v", err)
	}
	if got := s.Broker().ReadAll(t, "st.extra", 300*time.Millisecond, 10*time.Second); len(got) != 3 {
		t.Errorf("after the restart the topic holds %d records, want 3 (the log kept)", len(got))
	}

	rdb := s.RedisClient(t)
	redisAddr := s.RedisAddr()
	if err := rdb.Set(ctx, "st:key", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.StopRedis(t)
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Error("Redis answers PING after StopRedis")
	}
	s.RestartRedis(t)
	if s.RedisAddr() != redisAddr {
		t.Errorf("the Redis address changed across the restart: %s, then %s", redisAddr, s.RedisAddr())
	}
	if n, err := rdb.Exists(ctx, "st:key").Result(); err != nil || n != 0 {
		t.Errorf("after the restart EXISTS st:key = %d (%v), want 0: a restarted Redis is empty", n, err)
	}
}

// TestLocalRestartNeedsRestartable: without a data directory the devbroker
// would come back empty, so RestartBroker refuses.
func TestLocalRestartNeedsRestartable(t *testing.T) {
	l := StartLocal(t, Options{})
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		l.RestartBroker(ft)
	}()
	if !strings.Contains(ft.msg, "RestartableBroker") {
		t.Errorf("RestartBroker without RestartableBroker: %q, want a failure naming Options.RestartableBroker", ft.msg)
	}
}

// fatalRecorder records a Fatal instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic("fatal")
}
