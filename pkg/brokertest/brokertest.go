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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/proctest"
)

// Broker is a running devbroker process.
type Broker struct {
	Addr string
	Proc *proctest.Proc
	// Security is what a client needs to connect (Options.TLS,
	// Options.Users): the CA, the client certificate when one is
	// required, and the first user with its password file. The zero
	// value for a plain broker.
	Security kafkaconn.Config
	// Certs are the TLS files (nil without TLS).
	Certs *Certs

	passwordFiles map[string]string // by user
	bin           string
	args          []string
	t             testing.TB
}

// User is a SASL user of the broker.
type User struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Name      string
	Password  string // no spaces
	Superuser bool   // passes every ACL
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

	// TLS makes the listener TLS only, with the server certificate of
	// Certs (NewCerts(t) when nil); ClientCerts also requires a client
	// certificate signed by Certs' CA.
	TLS         bool
	Certs       *Certs
	ClientCerts bool
	// Users makes every connection authenticate with SASL as one of
	// them; Broker.Security is the first.
	Users []User
	// ACLs turns ACL checking on; ACLLines are the users' ACLs in the
	// devbroker's form, "acl USER allow|deny OPERATION RESOURCE_TYPE
	// NAME [literal|prefixed]".
	ACLs     bool
	ACLLines []string
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
	b := &Broker{bin: proctest.Build(t, "services/devbroker"), t: t, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	args = append(args, b.secure(t, o)...)
	b.args = args
	b.start()
	t.Logf("brokertest: using the local devbroker process (kfake) at %s (tls %v, sasl users %d, acls %v); no Docker engine is used",
		b.Addr, o.TLS, len(o.Users), o.ACLs)
	return b
}

// secure writes the files of o's TLS and SASL settings, fills b.Security
// and returns the devbroker's flags.
func (b *Broker) secure(t testing.TB, o Options) []string {
	t.Helper()
	var args []string
	if o.TLS {
		if o.Certs == nil {
			o.Certs = NewCerts(t)
		}
		b.Certs = o.Certs
		args = append(args, "--tls-cert-file", o.Certs.ServerCert, "--tls-key-file", o.Certs.ServerKey)
		b.Security.TLS, b.Security.CAFile = true, o.Certs.CAFile
		if o.ClientCerts {
			args = append(args, "--tls-client-ca-file", o.Certs.CAFile)
			b.Security.CertFile, b.Security.KeyFile = o.Certs.ClientCert, o.Certs.ClientKey
		}
	} else if o.ClientCerts {
		t.Fatal("brokertest: ClientCerts needs TLS")
	}
	if len(o.Users) > 0 {
		dir := t.TempDir()
		var lines []string
		b.passwordFiles = map[string]string{}
		for i, u := range o.Users {
			line := u.Mechanism + " " + u.Name + " " + u.Password
			if u.Superuser {
				line += " superuser"
			}
			lines = append(lines, line)
			if _, ok := b.passwordFiles[u.Name]; !ok {
				f := filepath.Join(dir, fmt.Sprintf("password-%d", i))
				if err := os.WriteFile(f, []byte(u.Password+"\n"), 0o600); err != nil {
					t.Fatalf("brokertest: write a password file: %v", err)
				}
				b.passwordFiles[u.Name] = f
			}
		}
		lines = append(lines, o.ACLLines...)
		users := filepath.Join(dir, "users")
		if err := os.WriteFile(users, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("brokertest: write the users file: %v", err)
		}
		args = append(args, "--sasl-users-file", users)
		b.Security.SASLMechanism, b.Security.SASLUsername, b.Security.SASLPasswordFile = o.Users[0].Mechanism, o.Users[0].Name, b.passwordFiles[o.Users[0].Name]
	}
	if o.ACLs {
		args = append(args, "--acls")
	}
	return args
}

// SecurityAs is Security with user name and mechanism instead of the first
// user's (name must be one of Options.Users).
func (b *Broker) SecurityAs(mechanism, name string) kafkaconn.Config {
	b.t.Helper()
	f, ok := b.passwordFiles[name]
	if !ok {
		b.t.Fatalf("brokertest: no user %q", name)
	}
	c := b.Security
	c.SASLMechanism, c.SASLUsername, c.SASLPasswordFile = mechanism, name, f
	return c
}

// Dialer returns a kafka-go Dialer that connects to b (Security).
func (b *Broker) Dialer() *kafka.Dialer { return b.Security.Dialer("brokertest") }

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
	conn, err := b.Dialer().Dial("tcp", b.Addr)
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

// ReadAll reads every record of topic from the beginning: at least up to
// the end each partition had when it was called (waiting up to timeout for
// them), then on until no new record arrives for quiet, or until timeout.
// It uses a plain partition reader per partition (no consumer group). The
// records already written never depend on quiet: a first fetch slower
// than quiet on a loaded machine used to end a partition's read before its
// first record, so that the records of whole partitions were missing.
func (b *Broker) ReadAll(t testing.TB, topic string, quiet, timeout time.Duration) []kafka.Message {
	t.Helper()
	conn, err := b.Dialer().Dial("tcp", b.Addr)
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
		deadline := time.Now().Add(timeout)
		end := b.partitionEnd(t, topic, p.ID, deadline)
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{b.Addr}, Topic: topic, Partition: p.ID, Dialer: b.Dialer(),
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond,
		})
		next := int64(0)
		for time.Now().Before(deadline) {
			wait := quiet
			if next < end {
				wait = time.Until(deadline) // written before the call: wait for it
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			m, err := r.ReadMessage(ctx)
			cancel()
			if err != nil {
				break
			}
			out = append(out, m)
			next = m.Offset + 1
		}
		r.Close()
		if next < end {
			t.Fatalf("brokertest: read %s/%d up to offset %d within %v, but it ends at %d", topic, p.ID, next, timeout, end)
		}
	}
	return out
}

// partitionEnd returns the offset after the last record of topic's
// partition (its high watermark), retrying until deadline.
func (b *Broker) partitionEnd(t testing.TB, topic string, partition int, deadline time.Time) int64 {
	t.Helper()
	var err error
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		var conn *kafka.Conn
		if conn, err = b.Dialer().DialLeader(ctx, "tcp", b.Addr, topic, partition); err == nil {
			var end int64
			end, err = conn.ReadLastOffset()
			conn.Close()
			cancel()
			if err == nil {
				return end
			}
		} else {
			cancel()
		}
		if time.Now().After(deadline) {
			t.Fatalf("brokertest: read the end offset of %s/%d: %v", topic, partition, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
