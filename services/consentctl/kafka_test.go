package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestBrokerReadsOverTLSAndSCRAM: consentctl reads the brokers with the
// services' KAFKA_TLS* and KAFKA_SASL_* variables, and says what to check,
// without the password, when the broker refuses them.
func TestBrokerReadsOverTLSAndSCRAM(t *testing.T) {
	t.Parallel()
	const password = "ctl-pw-never-shown"
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, TLS: true,
		Users: []brokertest.User{{Mechanism: "SCRAM-SHA-256", Name: "auditor", Password: password}}})
	kc := stream.DefaultConfig()
	kc.Brokers, kc.Security = []string{b.Addr}, b.Security
	w := stream.NewWriter(kc)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.WriteAll(ctx, w, []kafka.Message{{Topic: "consent.audit", Key: []byte("k"), Value: []byte("an audit record")}}, nil); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"KAFKA_BROKERS": b.Addr, "KAFKA_TLS_CA_FILE": b.Security.CAFile,
		"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_USERNAME": "auditor", "KAFKA_SASL_PASSWORD_FILE": b.Security.SASLPasswordFile,
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "export.jsonl")
	if o, e, code := runCtl(t, vars, "audit-export", "--out", out); code != 0 {
		t.Fatalf("audit-export over TLS and SCRAM: exit %d\n%s%s", code, o, e)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"kind":"record"`); n != 1 {
		t.Fatalf("export holds %d audit records, want 1:\n%s", n, data)
	}

	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars["KAFKA_SASL_PASSWORD_FILE"] = wrong
	o, e, code := runCtl(t, vars, "audit-export", "--out", filepath.Join(dir, "refused.jsonl"))
	if code != 1 || !strings.Contains(e, "SASL authentication failed") || !strings.Contains(e, "KAFKA_SASL_PASSWORD_FILE") {
		t.Errorf("audit-export with a wrong password: exit %d, want 1 and what to check\n%s%s", code, o, e)
	}
	if strings.Contains(o+e, password) {
		t.Errorf("consentctl shows the password:\n%s%s", o, e)
	}
	vars["KAFKA_SASL_PASSWORD_FILE"] = ""
	if _, e, code := runCtl(t, vars, "completeness", "--dsn", "sqlite:"+filepath.Join(dir, "l.db")); code != 1 || !strings.Contains(e, "KAFKA_SASL_PASSWORD_FILE is empty") {
		t.Errorf("completeness without a password file: exit %d, want 1 and what to set\n%s", code, e)
	}
}
