package stream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/stream"
)

const (
	testUser     = "app"
	testPassword = "pw-Zq8-never-logged"
)

// secureConfig is a stream.Config for b, connecting as b.Security says.
func secureConfig(b *brokertest.Broker) stream.Config {
	c := stream.DefaultConfig()
	c.Brokers = []string{b.Addr}
	c.ClientID = "stream-security-test"
	c.Security = b.Security
	return c
}

// TestSecureBrokerEveryMechanism writes a record and reads it back through
// pkg/stream (a writer, a consumer-group reader, a commit) and makes the
// metadata calls (Client, Committed, Ping, topicread) against a devbroker
// that accepts only TLS with the mechanism's user.
func TestSecureBrokerEveryMechanism(t *testing.T) {
	t.Parallel()
	certs := brokertest.NewCerts(t)
	for _, mech := range []string{kafkaconn.Plain, kafkaconn.ScramSHA256, kafkaconn.ScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"sec.in"}, TLS: true, Certs: certs,
				Users: []brokertest.User{{Mechanism: mech, Name: testUser, Password: testPassword}}})
			cfg := secureConfig(b)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := stream.CheckSecurity(ctx, cfg); err != nil {
				t.Fatalf("CheckSecurity: %v", err)
			}
			if err := stream.Ping(ctx, cfg); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			meta, err := cfg.Client().Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"sec.in"}})
			if err != nil {
				t.Fatalf("metadata: %v", err)
			}
			if len(meta.Topics) != 1 || meta.Topics[0].Error != nil || len(meta.Topics[0].Partitions) != 1 {
				t.Fatalf("metadata of sec.in: %+v", meta.Topics)
			}

			w := stream.NewWriter(cfg)
			defer w.Close()
			value := fmt.Sprintf("over %s", mech)
			if err := stream.WriteAll(ctx, w, []kafka.Message{{Topic: "sec.in", Key: []byte("k"), Value: []byte(value)}}, nil); err != nil {
				t.Fatalf("write: %v", err)
			}
			r := stream.NewReader(cfg, stream.ReaderConfig{Topics: []string{"sec.in"}, GroupID: "sec-group", MaxWait: 100 * time.Millisecond,
				SessionTimeout: 6 * time.Second, FromBeginning: true})
			defer r.Close()
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(m.Value) != value {
				t.Fatalf("read %q, want %q", m.Value, value)
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("commit: %v", err)
			}
			committed, err := stream.Committed(ctx, cfg, "sec-group", []string{"sec.in"})
			if err != nil {
				t.Fatalf("Committed: %v", err)
			}
			if got := committed["sec.in"][0]; got != 1 {
				t.Fatalf("committed offset %d, want 1", got)
			}
			offs, err := cfg.TopicReader(0).Offsets(ctx, "sec.in")
			if err != nil {
				t.Fatalf("topicread offsets: %v", err)
			}
			if offs[0].End != 1 {
				t.Fatalf("topicread: end offset %d, want 1", offs[0].End)
			}
			var read []string
			if err := cfg.TopicReader(0).Read(ctx, "sec.in", 0, 0, 1, func(m kafka.Message) error {
				read = append(read, string(m.Value))
				return nil
			}); err != nil || len(read) != 1 || read[0] != value {
				t.Fatalf("topicread read %q, %v; want [%q]", read, err, value)
			}
			// The broker's own reads (brokertest) connect the same way.
			if got := b.ReadAll(t, "sec.in", time.Second, 10*time.Second); len(got) != 1 {
				t.Fatalf("brokertest ReadAll: %d records, want 1", len(got))
			}
		})
	}
}

// TestSecureBrokerRefusesWrongSettings: a wrong password, a mechanism the
// user does not have, a CA that did not sign the broker's certificate and
// a client without TLS fail, each saying what to check, and no error shows
// the password.
func TestSecureBrokerRefusesWrongSettings(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, TLS: true,
		Users: []brokertest.User{{Mechanism: kafkaconn.ScramSHA512, Name: testUser, Password: testPassword}}})
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-"+testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := brokertest.NewCerts(t)
	cases := []struct {
		name   string
		mutate func(*kafkaconn.Config)
		want   []string // in the error
		strict bool     // a security error (stops start-up)
	}{
		{"wrong password", func(c *kafkaconn.Config) { c.SASLPasswordFile = wrong },
			[]string{"SASL authentication failed", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SASL_USERNAME"}, true},
		{"unknown user", func(c *kafkaconn.Config) { c.SASLUsername = "nobody" },
			[]string{"SASL authentication failed", "KAFKA_SASL_USERNAME"}, true},
		{"other mechanism", func(c *kafkaconn.Config) { c.SASLMechanism = kafkaconn.ScramSHA256 },
			[]string{"SASL authentication failed", "KAFKA_SASL_MECHANISM"}, true},
		{"untrusted CA", func(c *kafkaconn.Config) { c.CAFile = other.CAFile },
			[]string{"TLS handshake failed", "not signed by a trusted CA", "KAFKA_TLS_CA_FILE"}, true},
		{"wrong server name", func(c *kafkaconn.Config) { c.ServerName = "kafka.example" },
			[]string{"TLS handshake failed", "KAFKA_TLS_SERVER_NAME"}, true},
		{"no TLS", func(c *kafkaconn.Config) { c.TLS, c.CAFile = false, "" },
			[]string{"set KAFKA_TLS=true"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := secureConfig(b)
			tc.mutate(&cfg.Security)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v (the settings are well-formed; the broker refuses them)", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs := map[string]error{"Ping": stream.Ping(ctx, cfg), "CheckSecurity": stream.CheckSecurity(ctx, cfg)}
			_, errs["Committed"] = stream.Committed(ctx, cfg, "g", []string{"consent.changes"})
			_, errs["topicread"] = cfg.TopicReader(0).Partitions(ctx, "consent.changes")
			for where, err := range errs {
				if where == "CheckSecurity" && !tc.strict {
					if err != nil {
						t.Errorf("CheckSecurity: %v; want nil (not surely a setting: start-up goes on)", err)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s: no error", where)
					continue
				}
				msg := err.Error()
				for _, w := range tc.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: %q does not say %q", where, msg, w)
					}
				}
				if strings.Contains(msg, testPassword) {
					t.Errorf("%s: the error shows the password: %q", where, msg)
				}
				if tc.strict != errors.Is(err, kafkaconn.ErrSecurity) {
					t.Errorf("%s: errors.Is(err, ErrSecurity) = %v, want %v: %v", where, !tc.strict, tc.strict, err)
				}
			}
			// A write fails too, and is not acknowledged.
			w := stream.NewWriter(cfg)
			defer w.Close()
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
			defer wcancel()
			if err := w.WriteMessages(wctx, kafka.Message{Topic: "consent.changes", Key: []byte("k"), Value: []byte("v")}); err == nil {
				t.Error("a write with wrong settings was acknowledged")
			} else if strings.Contains(err.Error(), testPassword) {
				t.Errorf("the write error shows the password: %v", err)
			}
		})
	}
}

// TestBrokerACLs: with ACLs on, a user may do what its ACLs allow and no
// more.
func TestBrokerACLs(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"acl.open", "acl.closed"}, TLS: true, ACLs: true,
		Users: []brokertest.User{
			{Mechanism: kafkaconn.ScramSHA256, Name: "admin", Password: "admin-pw", Superuser: true},
			{Mechanism: kafkaconn.ScramSHA256, Name: testUser, Password: testPassword},
		},
		ACLLines: []string{
			"acl " + testUser + " allow write topic acl.open",
			"acl " + testUser + " allow describe topic acl. prefixed",
		}})
	cfg := secureConfig(b)
	cfg.Security = b.SecurityAs(kafkaconn.ScramSHA256, testUser)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := stream.NewWriter(cfg)
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Topic: "acl.open", Value: []byte("allowed")}); err != nil {
		t.Fatalf("write to acl.open (allowed): %v", err)
	}
	err := w.WriteMessages(ctx, kafka.Message{Topic: "acl.closed", Value: []byte("refused")})
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != 1 || !errors.Is(werrs[0], kafka.TopicAuthorizationFailed) {
		t.Fatalf("write to acl.closed (no ACL): %v, want TopicAuthorizationFailed", err)
	}
	// The superuser reads what was written.
	if got := b.ReadAll(t, "acl.open", time.Second, 10*time.Second); len(got) != 1 || string(got[0].Value) != "allowed" {
		t.Fatalf("acl.open holds %d records, want the one allowed", len(got))
	}
}
