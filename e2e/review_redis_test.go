package e2e

// Adversarial review of "Redis for production" (issue 13 part 7), on the
// built binaries. A failure is a finding of the review.

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestReviewRedisKeyContentNeverLogged: an operator who maps the Redis
// client key's Secret to REDIS_TLS_KEY_FILE as a value (valueFrom in a pod
// spec) instead of mounting it as a file gets a start-up error from the
// enforcer and from consent-sync. That error goes to their logs (the
// cluster's log store), and must not contain the private key.
func TestReviewRedisKeyContentNeverLogged(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	key, err := os.ReadFile(certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	var body string
	for _, l := range strings.Split(string(key), "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") {
			body = l
			break
		}
	}
	for _, svc := range []string{"enforcer", "consent-sync"} {
		proc := proctest.Start(t, svc, proctest.Build(t, "services/"+svc), []string{
			"REDIS_ADDR=127.0.0.1:1",
			"REDIS_TLS=true",
			"REDIS_TLS_CA_FILE=" + certs.CAFile,
			"REDIS_TLS_CERT_FILE=" + certs.ClientCert,
			"REDIS_TLS_KEY_FILE=" + string(key),
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = proc.Wait(ctx)
		cancel()
		if !proc.Exited() || proc.ExitCode() == 0 {
			t.Errorf("%s did not stop at start-up (exit %d)", svc, proc.ExitCode())
		}
		out := proc.Output()
		if !strings.Contains(out, "REDIS_TLS_KEY_FILE") {
			t.Errorf("%s: the start-up error does not name REDIS_TLS_KEY_FILE", svc)
		}
		if strings.Contains(out, body) || strings.Contains(out, "BEGIN PRIVATE KEY") {
			t.Errorf("%s printed the Redis client's private key in its start-up error (%d bytes of output)", svc, len(out))
		}
	}
}
