package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// The Redis passwords of the services' ACL users: no log line may hold
// them.
const (
	redisEnforcerPassword = "redis-enf-e2e-Tq8v-do-not-log"
	redisSyncPassword     = "redis-sync-e2e-Lm3k-do-not-log"
)

// redisACLLines returns the documented ACL lines (pkg/consent's
// testdata/redis-acl.conf, which the README shows) for prefix, with the
// e2e passwords.
func redisACLLines(t *testing.T, prefix string) []string {
	t.Helper()
	f, err := os.Open("../pkg/consent/testdata/redis-acl.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pw := map[string]string{"consentgate-enforcer": redisEnforcerPassword, "consentgate-sync": redisSyncPassword}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, "user ") {
			continue
		}
		p, ok := pw[strings.Fields(l)[1]]
		if !ok {
			t.Fatalf("unknown user in the ACL file: %s", strings.Fields(l)[1])
		}
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(l, "<prefix>", prefix), "<password>", p))
	}
	if err := sc.Err(); err != nil || len(out) != 2 {
		t.Fatalf("the ACL file has %d user lines, want 2 (%v)", len(out), err)
	}
	return out
}

// TestRedisProductionPipeline runs consent-sync and the enforcer (the
// built binaries) against a 3-master Redis Cluster joined by redis-cli
// --cluster create, whose nodes speak only TLS, require client
// certificates and know only the documented ACL users: each service logs
// in as its own user with its password from a file. Subjects live on every
// master; a granted subject's event reaches compliant.marketing, a
// withdrawn subject's does not, no node refused a command of either
// service, and no log shows a password. An enforcer logging in with
// another user's password stops at start-up saying what to check.
func TestRedisProductionPipeline(t *testing.T) {
	t.Parallel()
	prefix := redistest.PrefixFor(t)
	certs := redistest.NewCerts(t)
	cl := redistest.StartClusterWith(t, 3, redistest.Options{TLS: certs, ClientCerts: true, Users: redisACLLines(t, prefix)})
	t.Logf("redis: local 3-master Redis Cluster over TLS with ACL users at %v (no Docker engine here)", cl.Addrs())
	admin := cl.Client(t)
	p := &pipeline{broker: brokertest.Start(t, brokertest.Options{Partitions: 2, Topics: []string{"compliant.marketing"}}), prefix: prefix}
	policyFile, err := filepath.Abs("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pwFile := func(name, pw string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	enfPW, syncPW := pwFile("enforcer-redis-password", redisEnforcerPassword), pwFile("sync-redis-password", redisSyncPassword)
	p.env = []string{
		"KAFKA_BROKERS=" + p.broker.Addr,
		"REDIS_ADDR=" + strings.Join(cl.Addrs(), ","),
		"REDIS_TLS=true", "REDIS_TLS_CA_FILE=" + certs.CAFile,
		"REDIS_TLS_CERT_FILE=" + certs.ClientCert, "REDIS_TLS_KEY_FILE=" + certs.ClientKey,
		"POLICY_FILE=" + policyFile, "CONSENT_KEY_PREFIX=" + prefix,
		"ENFORCER_SESSION_TIMEOUT=6s", "CONSENT_SYNC_SESSION_TIMEOUT=6s",
	}
	syncEnv := append(append([]string{}, p.env...), "REDIS_USERNAME=consentgate-sync", "REDIS_PASSWORD_FILE="+syncPW)
	enfEnv := append(append([]string{}, p.env...), "REDIS_USERNAME=consentgate-enforcer", "REDIS_PASSWORD_FILE="+enfPW)
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p.codec = avrocodec.New(cat, nil)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{p.broker.Addr}
	p.writer = stream.NewWriter(kc)
	t.Cleanup(func() { p.writer.Close() })

	// An enforcer with consent-sync's password for its user stops at
	// start-up, saying what to check, without either password.
	enforcerBin := proctest.Build(t, "services/enforcer")
	refused := proctest.Start(t, "enforcer-wrong-redis-password", enforcerBin,
		append(append([]string{}, p.env...), "REDIS_USERNAME=consentgate-enforcer", "REDIS_PASSWORD_FILE="+syncPW))
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	werr := refused.Wait(wctx)
	wcancel()
	if werr == nil || refused.ExitCode() != 1 {
		t.Fatalf("the enforcer with a wrong Redis password: %v (exit %d), want exit 1:\n%s", werr, refused.ExitCode(), refused.Output())
	}
	for _, w := range []string{"Redis authentication failed", "REDIS_USERNAME", "REDIS_PASSWORD_FILE"} {
		if !strings.Contains(refused.Output(), w) {
			t.Errorf("the refused enforcer's log does not say %q:\n%s", w, refused.Output())
		}
	}

	p.sync = proctest.Start(t, "consent-sync", proctest.Build(t, "services/consent-sync"), syncEnv)
	p.enforce = proctest.Start(t, "enforcer", enforcerBin, enfEnv)
	for proc, line := range map[*proctest.Proc]string{p.sync: `"msg":"syncing consent"`, p.enforce: `"msg":"enforcing"`} {
		if err := proc.WaitFor(line, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Two subjects per master: one granted, one granted then withdrawn.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	store := consent.NewStore(admin, prefix)
	perMaster := map[string][]string{}
	for i := 0; len(perMaster) < 3 || minLen(perMaster) < 2; i++ {
		s := fmt.Sprintf("rp-subject-%d", i)
		m, err := admin.MasterForKey(ctx, store.Key(s))
		if err != nil {
			t.Fatal(err)
		}
		if a := m.Options().Addr; len(perMaster[a]) < 2 {
			perMaster[a] = append(perMaster[a], s)
		}
	}
	now := time.Now()
	var granted, withdrawn []string
	var changes []consent.Change
	for _, subjects := range perMaster {
		for j, s := range subjects {
			changes = append(changes, consent.Change{ChangeID: "g-" + s, SubjectID: s, Purpose: "marketing", Action: consent.ActionGrant,
				LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now})
			if j == 0 {
				granted = append(granted, s)
				continue
			}
			withdrawn = append(withdrawn, s)
			changes = append(changes, consent.Change{ChangeID: "w-" + s, SubjectID: s, Purpose: "marketing", Action: consent.ActionWithdraw,
				LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now.Add(time.Second)})
		}
	}
	for _, c := range changes {
		p.produce(t, p.change(t, c))
	}
	waitClusterConsent(t, ctx, store, granted, consent.StatusGranted)
	waitClusterConsent(t, ctx, store, withdrawn, consent.StatusWithdrawn)

	for _, s := range append(append([]string{}, granted...), withdrawn...) {
		p.produce(t, p.email(t, "evt-"+s, s))
	}
	rows := p.audit(t, len(granted)+len(withdrawn))
	want := map[string]string{}
	for _, s := range granted {
		want["evt-"+s] = "PASSED"
	}
	for _, s := range withdrawn {
		want["evt-"+s] = "DROPPED"
	}
	for _, r := range rows {
		if want[r.eventID] != r.decision {
			t.Errorf("audit of %s: %s (%s), want %s", r.eventID, r.decision, r.reason, want[r.eventID])
		}
	}
	out := p.broker.ReadAll(t, "compliant.marketing", 500*time.Millisecond, 10*time.Second)
	got := map[string]bool{}
	for _, m := range out {
		id, _ := stream.Header(m, "consentgate.event_id")
		got[id] = true
	}
	if len(out) != len(granted) {
		t.Errorf("compliant.marketing holds %d records, want the %d granted subjects' events", len(out), len(granted))
	}
	for _, s := range granted {
		if !got["evt-"+s] {
			t.Errorf("the granted subject %s's event is not on compliant.marketing", s)
		}
	}
	for _, s := range withdrawn {
		if got["evt-"+s] {
			t.Errorf("the withdrawn subject %s's event reached compliant.marketing", s)
		}
	}

	// Neither service was refused a command by any node.
	for _, n := range cl.Nodes {
		c := redis.NewClient(n.Options())
		entries, err := c.ACLLog(ctx, 100).Result()
		c.Close()
		if err != nil {
			t.Fatalf("ACL LOG: %v", err)
		}
		for _, e := range entries {
			if e.Username != "consentgate-enforcer" || e.Reason != "auth" {
				// The refused enforcer's login is the one expected entry.
				t.Errorf("node %s refused %s: %s %s %s", n.Addr(), e.Username, e.Reason, e.Context, e.Object)
			}
		}
	}

	for _, proc := range []*proctest.Proc{p.enforce, p.sync} {
		if err := proc.Stop(30 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s did not stop cleanly: %v", proc.Name, err)
		}
	}
	for _, proc := range []*proctest.Proc{p.enforce, p.sync, refused} {
		for _, secret := range []string{redisEnforcerPassword, redisSyncPassword} {
			if strings.Contains(proc.Output(), secret) {
				t.Errorf("%s logged a Redis password", proc.Name)
			}
		}
	}
}

func minLen(m map[string][]string) int {
	lo := -1
	for _, v := range m {
		if lo < 0 || len(v) < lo {
			lo = len(v)
		}
	}
	return lo
}

// waitClusterConsent polls the cluster until every subject's marketing
// purpose has the wanted status.
func waitClusterConsent(t *testing.T, ctx context.Context, store *consent.Store, subjects []string, want consent.Status) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		states, err := store.Lookup(ctx, subjects)
		done := err == nil
		for _, s := range subjects {
			done = done && states[s] != nil && states[s].Purposes["marketing"].Status == want
		}
		if done {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("consent-sync did not store %s for %d subjects within 60s", want, len(subjects))
}
