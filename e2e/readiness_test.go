package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/proctest"
)

// TestReadinessFollowsKafka: /readyz of every service answers 503 while
// the brokers are down and 200 again once they are back, so that a
// Kubernetes Service stops routing to a consent-sync whose intake cannot
// write, and an orchestrator sees a ledger that cannot read. The ledger
// kept answering 503 after the brokers came back while no record came:
// the error of the failed session was never cleared.
func TestReadinessFollowsKafka(t *testing.T) {
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t)) }
	enfAddr, syncAddr, ledgerAddr := addr(), addr(), addr()
	p := startPipelineWith(t, "testdata/policy.yaml", []string{"compliant.marketing"},
		"ENFORCER_TELEMETRY_ADDR="+enfAddr, "CONSENT_SYNC_TELEMETRY_ADDR="+syncAddr)
	ledger := proctest.Start(t, "ledger", proctest.Build(t, "services/ledger"), []string{
		"KAFKA_BROKERS=" + p.broker.Addr, "LEDGER_DSN=sqlite:" + filepath.Join(t.TempDir(), "ledger.db"),
		"LEDGER_TELEMETRY_ADDR=" + ledgerAddr, "LEDGER_REFRESH=300ms",
	})
	if err := ledger.WaitFor(`"msg":"consuming"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	services := map[string]string{"enforcer": enfAddr, "consent-sync": syncAddr, "ledger": ledgerAddr}
	ready := func(a string) (int, string) {
		resp, err := http.Get("http://" + a + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// also names, per service, a check that must fail too while the
	// brokers are down: the ledger's consumer reports the outage once it
	// has not written for 30 s.
	also := map[string]string{"enforcer": "kafka: not ready", "consent-sync": "kafka: not ready", "ledger": "ledger-consumer: not ready"}
	waitAll := func(want int, why string) {
		t.Helper()
		for name, a := range services {
			code, body := 0, ""
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				code, body = ready(a)
				if code == want && (want == http.StatusOK || strings.Contains(body, also[name])) {
					break
				}
			}
			if code != want {
				t.Errorf("%s /readyz answered %d %s, want %d %s", name, code, strings.TrimSpace(body), want, why)
			} else if want != http.StatusOK && (!strings.Contains(body, "kafka: not ready") || !strings.Contains(body, also[name])) {
				t.Errorf("%s /readyz does not name the checks kafka and %q while the brokers are down: %s", name, also[name], strings.TrimSpace(body))
			}
		}
	}
	waitAll(http.StatusOK, "with the brokers up")
	if err := p.broker.Proc.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop devbroker: %v", err)
	}
	waitAll(http.StatusServiceUnavailable, "while the brokers are down")
	p.broker.Restart()
	waitAll(http.StatusOK, "once the brokers are back")
}
