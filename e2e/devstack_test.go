package e2e

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestDevstackShowsEventsFlowing runs what `make run` runs, for a few
// seconds: the broker, both services and the demo producer, and checks that
// the summary shows events passed and dropped on every purpose stream, and
// that the stack stops cleanly by itself.
func TestDevstackShowsEventsFlowing(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"devbroker", "consent-sync", "enforcer", "ledger"} {
		proctest.Build(t, "services/"+svc) // devstack finds them beside itself
	}
	bin := proctest.Build(t, "services/devstack")
	redis := redistest.Start(t)
	root := proctest.RepoRoot(t)
	dataDir := t.TempDir()
	p := proctest.Start(t, "devstack", bin, []string{
		"REDIS_ADDR=" + redis.Addr(),
		"DEVSTACK_DATA_DIR=" + dataDir,
		"DEVSTACK_CONSOLE_ADDR=127.0.0.1:" + strconv.Itoa(brokertest.FreePort(t)),
		"DEVBROKER_PORT=0",
		"POLICY_FILE=" + root + "/deploy/policy.yaml",
		"DEVSTACK_DURATION=20s",
		"DEVSTACK_SUMMARY_EVERY=2s",
		"DEMO_EVENTS_PER_SEC=100",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("devstack exited with %v", err)
	}
	out := p.Output()
	if !regexp.MustCompile(`compliance ledger: sqlite:\S+; console http://127\.0\.0\.1:\d+/`).MatchString(out) {
		t.Errorf("devstack did not say where the ledger and its console are")
	}
	if !strings.Contains(out, "stopped cleanly") {
		t.Errorf("devstack did not report a clean stop")
	}
	// The last summary block: one line per stream of deploy/policy.yaml.
	line := regexp.MustCompile(`(?m)^\s+(compliant\.\S+)\s+passed\s+(\d+)\s+redacted\s+(\d+)\s+dropped\s+(\d+)$`)
	last := map[string][3]int{}
	for _, m := range line.FindAllStringSubmatch(out, -1) {
		passed, _ := strconv.Atoi(m[2])
		redacted, _ := strconv.Atoi(m[3])
		dropped, _ := strconv.Atoi(m[4])
		last[m[1]] = [3]int{passed, redacted, dropped}
	}
	for _, s := range []string{"compliant.marketing", "compliant.analytics", "compliant.personalisation", "compliant.partners"} {
		c, ok := last[s]
		if !ok {
			t.Errorf("summary has no line for %s", s)
			continue
		}
		if c[0] == 0 || c[1]+c[2] == 0 {
			t.Errorf("%s: passed %d, redacted %d, dropped %d; want events passed and others held back", s, c[0], c[1], c[2])
		}
	}
	// deploy/policy.yaml redacts analytics without consent, and removes
	// excluded health data from marketing.
	if last["compliant.analytics"][1] == 0 || last["compliant.marketing"][1] == 0 {
		t.Errorf("no redacted events on compliant.analytics or compliant.marketing: %v", last)
	}
	if !regexp.MustCompile(`dead letters [1-9]`).MatchString(out) {
		t.Errorf("the demo's poison records did not reach the dead-letter topic")
	}
	if !regexp.MustCompile(`revocation notices [1-9]`).MatchString(out) {
		t.Errorf("no revocation notices in the summary")
	}
	// The ledger ran beside the pipeline: its audit has no gap, and it
	// holds records of every kind.
	c := ctl{t: t, bin: proctest.Build(t, "services/consentctl"), env: []string{"LEDGER_DSN=sqlite:" + dataDir + "/ledger.db"}}
	if out := c.must(0, "completeness"); !strings.Contains(out, "complete") {
		t.Errorf("completeness of the dev stack's ledger:\n%s", out)
	}
	stats := c.must(0, "stats")
	for _, table := range []string{"audit_records", "consent_changes", "revocation_notices", "audit_checkpoints"} {
		if !regexp.MustCompile(`(?m)^\s+` + table + `\s+[1-9]`).MatchString(stats) {
			t.Errorf("the dev stack's ledger has no %s:\n%s", table, stats)
		}
	}
}
