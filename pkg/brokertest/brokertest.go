// Package brokertest starts the project's embedded Kafka-protocol broker
// (services/devbroker, built on franz-go's kfake) as a separate process
// listening on 127.0.0.1, so that tests talk to a real broker over TCP.
//
// When Docker is available a test could use a containerised Kafka instead;
// this machine kind has no Docker engine, so the local process is the path
// the tests take, and Start logs which one it used.
package brokertest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/proctest"
)

// Broker is a running devbroker process.
type Broker struct {
	Addr string
	Proc *proctest.Proc
	bin  string
	args []string
	t    testing.TB
}

// Options tune the broker.
type Options struct {
	Partitions int      // default 3
	Topics     []string // created at start, in addition to the defaults
	DataDir    string   // keep the log on disk (restartable)
	// MaxMessageBytes is the broker's message.max.bytes (the largest
	// record batch a topic without its own max.message.bytes accepts);
	// 0 keeps the default, 1048588. See CreateTopicsWithConfig for one
	// topic's own limit.
	MaxMessageBytes int
}

// Start builds (once) and starts a devbroker on a free port.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	port := FreePort(t)
	args := []string{"--port", fmt.Sprint(port), "--partitions", fmt.Sprint(o.Partitions)}
	if len(o.Topics) > 0 {
		args = append(args, "--topics", strings.Join(o.Topics, ","))
	}
	if o.MaxMessageBytes > 0 {
		args = append(args, "--max-message-bytes", fmt.Sprint(o.MaxMessageBytes))
	}
	if o.DataDir != "" {
		args = append(args, "--data-dir", o.DataDir)
	}
	b := &Broker{bin: proctest.Build(t, "services/devbroker"), args: args, t: t, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	b.start()
	t.Logf("brokertest: using the local devbroker process (kfake) at %s; no Docker engine is used", b.Addr)
	return b
}

func (b *Broker) start() {
	b.t.Helper()
	b.Proc = proctest.Start(b.t, "devbroker", b.bin, nil, b.args...)
	if err := b.Proc.WaitFor("devbroker ready", 30*time.Second); err != nil {
		b.t.Fatalf("devbroker: %v", err)
	}
}

// Restart stops the broker with SIGTERM and starts it again on the same port
// (and data directory, if any).
func (b *Broker) Restart() {
	b.t.Helper()
	if err := b.Proc.Stop(30 * time.Second); err != nil {
		b.t.Fatalf("stop devbroker: %v", err)
	}
	b.start()
}

// CreateTopics creates topics with the given partition count.
func (b *Broker) CreateTopics(t testing.TB, partitions int, topics ...string) {
	t.Helper()
	b.CreateTopicsWithConfig(t, partitions, nil, topics...)
}

// CreateTopicsWithConfig creates topics with the given partition count and
// topic configuration, such as {"max.message.bytes": "2097152"}.
func (b *Broker) CreateTopicsWithConfig(t testing.TB, partitions int, config map[string]string, topics ...string) {
	t.Helper()
	var entries []kafka.ConfigEntry
	for k, v := range config {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	conn, err := kafka.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	defer conn.Close()
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, tp := range topics {
		cfgs[i] = kafka.TopicConfig{Topic: tp, NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: entries}
	}
	if err := conn.CreateTopics(cfgs...); err != nil {
		t.Fatalf("create topics: %v", err)
	}
}

// ReadAll reads every record of topic from the beginning until no new record
// arrives for quiet, or until timeout. It uses a plain partition reader per
// partition (no consumer group).
func (b *Broker) ReadAll(t testing.TB, topic string, quiet, timeout time.Duration) []kafka.Message {
	t.Helper()
	conn, err := kafka.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("read partitions of %s: %v", topic, err)
	}
	var out []kafka.Message
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{b.Addr}, Topic: topic, Partition: p.ID,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond,
		})
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), quiet)
			m, err := r.ReadMessage(ctx)
			cancel()
			if err != nil {
				break
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
