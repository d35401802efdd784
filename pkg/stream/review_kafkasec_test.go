package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReviewRefusedClientCertificateStopsStartUp: a broker that requires
// a client certificate refuses a client without one, or with one its CA
// did not sign, by a TLS alert (with TLS 1.3 after the client's side of
// the handshake, on the first read). That is a setting to fix: every
// client error is a security error naming KAFKA_TLS_CERT_FILE, and
// CheckSecurity stops start-up, as the README says for a refused TLS
// handshake.
func TestReviewRefusedClientCertificateStopsStartUp(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, TLS: true, ClientCerts: true})
	other := brokertest.NewCerts(t)
	cases := []struct {
		name   string
		mutate func(*kafkaconn.Config)
	}{
		{"no client certificate", func(c *kafkaconn.Config) { c.CertFile, c.KeyFile = "", "" }},
		{"client certificate of another CA", func(c *kafkaconn.Config) { c.CertFile, c.KeyFile = other.ClientCert, other.ClientKey }},
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
				if err == nil {
					t.Errorf("%s: no error, want a TLS handshake failure that names KAFKA_TLS_CERT_FILE", where)
					continue
				}
				if !errors.Is(err, kafkaconn.ErrSecurity) || !strings.Contains(err.Error(), "KAFKA_TLS_CERT_FILE") {
					t.Errorf("%s: %v; want a security error (errors.Is ErrSecurity) that names KAFKA_TLS_CERT_FILE", where, err)
				}
			}
		})
	}
}
