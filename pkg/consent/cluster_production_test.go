package consent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redisconn"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// The Redis ACL users of the README's "Redis in production", as tested.
const (
	enforcerUser = "consentgate-enforcer"
	syncUser     = "consentgate-sync"
	aclFile      = "testdata/redis-acl.conf"
)

// aclLines returns the user lines of testdata/redis-acl.conf (the lines
// the README documents) for the key prefix (written as documented: a \
// before each glob character), each user with password passwords[user];
// it fails when a user of passwords has no line.
func aclLines(t testing.TB, prefix string, passwords map[string]string) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for _, l := range aclTemplate(t) {
		name := strings.Fields(l)[1]
		pw, ok := passwords[name]
		if !ok {
			t.Fatalf("%s: no password for user %s", aclFile, name)
		}
		seen[name] = true
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(l, "<prefix>", aclEscape(prefix)), "<password>", pw))
	}
	for name := range passwords {
		if !seen[name] {
			t.Fatalf("%s has no line for user %s", aclFile, name)
		}
	}
	return out
}

// aclEscape writes prefix for an ACL key or channel pattern, as the
// README says: a \ before each of * ? [ ] \.
func aclEscape(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// aclTemplate returns the "user ..." lines of the ACL file, placeholders
// and all.
func aclTemplate(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(aclFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "user ") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// productionConfig is the redisconn configuration a service uses on c as
// user (password in a file): TLS with the CA and a client certificate, the
// ACL user.
func productionConfig(t testing.TB, c *redistest.Cluster, certs *redistest.Certs, user, password string) redisconn.Config {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := redisconn.DefaultConfig()
	cfg.Addrs, cfg.TLS, cfg.Username, cfg.PasswordFile = c.Addrs(), true, user, pwFile
	cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = certs.CAFile, certs.ClientCert, certs.ClientKey
	return cfg
}

// prodCluster is a 3-master Redis Cluster with TLS (client certificates
// required) and the documented ACL users, and a connection as each user
// opened the way the services open theirs (redisconn).
type prodCluster struct {
	*redistest.Cluster
	prefix        string
	admin         *redis.ClusterClient
	enforcer, syn redis.UniversalClient
}

func startProdCluster(t *testing.T) *prodCluster {
	t.Helper()
	prefix := redistest.PrefixFor(t)
	pw := map[string]string{enforcerUser: "enf-" + prefix[1:9], syncUser: "sync-" + prefix[1:9]}
	certs := redistest.NewCerts(t)
	c := redistest.StartClusterWith(t, 3, redistest.Options{TLS: certs, ClientCerts: true, Users: aclLines(t, prefix, pw)})
	p := &prodCluster{Cluster: c, prefix: prefix, admin: c.Client(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range []struct {
		name string
		to   *redis.UniversalClient
	}{{enforcerUser, &p.enforcer}, {syncUser, &p.syn}} {
		rdb, err := redisconn.Open(ctx, productionConfig(t, c, certs, u.name, pw[u.name]))
		if err != nil {
			t.Fatalf("open as %s: %v", u.name, err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		*u.to = rdb
	}
	return p
}

// aclDenials returns the entries of every node's ACL LOG (what a user was
// refused), and clears the logs.
func (p *prodCluster) aclDenials(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, n := range p.Nodes {
		cl := redis.NewClient(n.Options())
		entries, err := cl.ACLLog(ctx, 100).Result()
		if err == nil {
			err = cl.ACLLogReset(ctx).Err()
		}
		cl.Close()
		if err != nil {
			t.Fatalf("ACL LOG on %s: %v", n.Addr(), err)
		}
		for _, e := range entries {
			out = append(out, fmt.Sprintf("%s: %s %s %s", e.Username, e.Reason, e.Context, e.Object))
		}
	}
	return out
}

// subjectsOnEveryMaster returns n subjects per master of the cluster.
func subjectsOnEveryMaster(t *testing.T, ctx context.Context, st *Store, rdb *redis.ClusterClient, n int) []string {
	t.Helper()
	per := map[string]int{}
	var out []string
	for i := 0; len(per) < 3 || minCount(per) < n; i++ {
		s := fmt.Sprintf("subj-%d", i)
		m, err := rdb.MasterForKey(ctx, st.Key(s))
		if err != nil {
			t.Fatal(err)
		}
		if per[m.Options().Addr] < n {
			per[m.Options().Addr]++
			out = append(out, s)
		}
		if i > 10000 {
			t.Fatalf("subjects do not spread over the masters: %v", per)
		}
	}
	return out
}

func minCount(m map[string]int) int {
	lo := -1
	for _, v := range m {
		if lo < 0 || v < lo {
			lo = v
		}
	}
	return lo
}

// TestACLLinesLetEachServiceWork: on a TLS Redis Cluster whose only users
// are the documented ones, consent-sync's user does everything consent-sync
// does (apply, notices, watermarks, replays, lookups, the scan before a
// rebuild) and the enforcer's user everything the enforcer does (gated
// lookups over every master, the invalidation subscription), and no node
// logs a refused command.
func TestACLLinesLetEachServiceWork(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProdCluster(t)
	syncStore := NewStore(p.syn, p.prefix)
	subjects := subjectsOnEveryMaster(t, ctx, syncStore, p.admin, 2)

	// consent-sync: a replay, then live batches.
	token, err := syncStore.BeginReplay(ctx)
	if err != nil {
		t.Fatalf("BeginReplay as %s: %v", syncUser, err)
	}
	if _, err := syncStore.Watermarks(ctx); err != nil {
		t.Fatalf("Watermarks as %s: %v", syncUser, err)
	}
	for i, s := range subjects {
		if _, err := syncStore.ApplyWith(ctx, grantAt(s, int64(1000+i)), ApplyOptions{StateIncomplete: true}); err != nil {
			t.Fatalf("Apply as %s: %v", syncUser, err)
		}
	}
	ends := Offsets{tp0: int64(len(subjects))}
	if ok, err := syncStore.SetWatermark(ctx, token, ends); err != nil || !ok {
		t.Fatalf("SetWatermark as %s: %v %v", syncUser, ok, err)
	}
	ranges := []Range{{tp0, int64(len(subjects)), int64(len(subjects)) + 1}}
	gen, err := syncStore.StateGeneration(ctx, ranges)
	if err != nil || gen == "" {
		t.Fatalf("StateGeneration as %s: %q %v", syncUser, gen, err)
	}
	if _, err := syncStore.Lookup(ctx, subjects); err != nil {
		t.Fatalf("Lookup as %s: %v", syncUser, err)
	}
	// What consent-sync's rebuild checks first (rebuild.ExistingKeys):
	// a watermark hash of the prefix on any node, without SCAN.
	if used, err := syncStore.HasWatermark(ctx); err != nil || !used {
		t.Fatalf("HasWatermark as %s: %v, %v; want true", syncUser, used, err)
	}
	if used, err := NewStore(p.admin, p.prefix+"unused:").HasWatermark(ctx); err != nil || used {
		t.Fatalf("HasWatermark of an unused prefix: %v, %v; want false", used, err)
	}

	// The enforcer: gated, cached lookups.
	enfStore := NewStore(p.enforcer, p.prefix).RequireFresh(freshAt(ends))
	cache := NewCache(enfStore, p.enforcer, 100, time.Minute)
	invalidated := make(chan string, 100)
	cache.onInvalidate = func(s string) { invalidated <- s }
	if err := cache.Start(ctx); err != nil {
		t.Fatalf("cache Start as %s: %v", enforcerUser, err)
	}
	defer cache.Close()
	got, err := cache.Lookup(ctx, subjects)
	if err != nil || len(got) != len(subjects) {
		t.Fatalf("Lookup as %s: %d states, %v", enforcerUser, len(got), err)
	}
	if err := p.enforcer.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING (readiness) as %s: %v", enforcerUser, err)
	}

	// A withdrawal: outbox, invalidation, acknowledgement, watermark.
	w := Change{ChangeID: "w-0", SubjectID: subjects[0], Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(5000)}
	o, err := syncStore.Apply(ctx, w)
	if err != nil || !o.NoticeDue {
		t.Fatalf("withdraw as %s: %+v %v", syncUser, o, err)
	}
	if !awaitInvalidation(invalidated, subjects[0]) {
		t.Fatal("the enforcer's cache got no invalidation of the withdrawn subject")
	}
	if err := syncStore.AckNotice(ctx, subjects[0], "w-0"); err != nil {
		t.Fatalf("AckNotice as %s: %v", syncUser, err)
	}
	if err := syncStore.Advance(ctx, ranges); err != nil {
		t.Fatalf("Advance as %s: %v", syncUser, err)
	}
	if after, err := syncStore.StateGeneration(ctx, ranges); err != nil || after != gen {
		t.Fatalf("StateGeneration after the batch: %q %v, want %q", after, err, gen)
	}
	got, err = cache.Lookup(ctx, subjects[:1])
	if err != nil || got[subjects[0]].Purposes["marketing"].Status != StatusWithdrawn {
		t.Fatalf("Lookup after the withdrawal as %s: %v %v", enforcerUser, got, err)
	}
	if d := p.aclDenials(t); len(d) > 0 {
		t.Fatalf("the ACL users were refused commands their services need:\n%s", strings.Join(d, "\n"))
	}
}

// TestACLEnforcerUserIsReadOnly: the enforcer's user cannot write a
// consent key, an outbox or a watermark (directly or from a script), cannot
// publish a fake invalidation, and cannot touch other keys, channels or the
// server; consent-sync's user cannot touch other keys or the server either.
func TestACLEnforcerUserIsReadOnly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProdCluster(t)
	syncStore := NewStore(p.syn, p.prefix)
	if _, err := syncStore.Apply(ctx, grantAt("s1", 1000)); err != nil {
		t.Fatal(err)
	}
	keys, err := syncStore.WatermarkKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wm := keys[0]
	subj, box, ch := syncStore.Key("s1"), syncStore.OutboxKey("s1"), syncStore.InvalidationChannel()
	other := p.prefix + "other:{s1}"
	e := p.enforcer
	refused := []struct {
		name string
		run  func() error
	}{
		{"HSET a consent key", func() error { return e.HSet(ctx, subj, "marketing", "{}").Err() }},
		{"HDEL a consent key", func() error { return e.HDel(ctx, subj, "marketing").Err() }},
		{"DEL a consent key", func() error { return e.Del(ctx, subj).Err() }},
		{"EXPIRE a consent key", func() error { return e.Expire(ctx, subj, time.Second).Err() }},
		{"Store.Apply (the apply script)", func() error { _, err := NewStore(e, p.prefix).Apply(ctx, grantAt("s1", 2000)); return err }},
		{"a write script on a consent key", func() error {
			return e.Eval(ctx, "return redis.call('HSET', KEYS[1], 'marketing', '{}')", []string{subj}).Err()
		}},
		{"a write script on a watermark", func() error {
			return e.Eval(ctx, "return redis.call('HSET', KEYS[1], 'v', '1')", []string{wm}).Err()
		}},
		{"Store.Advance (raise a watermark)", func() error { return NewStore(e, p.prefix).Advance(ctx, []Range{{tp0, 0, 99}}) }},
		{"read an outbox", func() error { return e.HGetAll(ctx, box).Err() }},
		{"PUBLISH a fake invalidation", func() error { return e.Publish(ctx, ch, "s1").Err() }},
		{"read another key", func() error { return e.Get(ctx, other).Err() }},
		{"write another key", func() error { return e.Set(ctx, other, "x", 0).Err() }},
		{"KEYS", func() error { return e.Keys(ctx, "*").Err() }},
		{"SCAN", func() error { return e.Scan(ctx, 0, "*", 10).Err() }},
		{"FLUSHALL", func() error { return e.FlushAll(ctx).Err() }},
		{"CONFIG GET", func() error { return e.ConfigGet(ctx, "*").Err() }},
		{"INFO keyspace", func() error { return e.Info(ctx, "keyspace").Err() }},
		{"the sync user reads another key", func() error { return p.syn.Get(ctx, other).Err() }},
		{"the sync user writes another key", func() error { return p.syn.Set(ctx, other, "x", 0).Err() }},
		{"the sync user deletes a consent key", func() error { return p.syn.Del(ctx, subj).Err() }},
		{"the sync user FLUSHALL", func() error { return p.syn.FlushAll(ctx).Err() }},
		{"the sync user CONFIG SET", func() error { return p.syn.ConfigSet(ctx, "appendonly", "no").Err() }},
	}
	for _, r := range refused {
		err := r.run()
		if err == nil {
			t.Errorf("%s: allowed, want refused", r.name)
			continue
		}
		// NOPERM, or for a script the command it may not run.
		if se := redisconn.Explain(err); !errors.Is(se, redisconn.ErrSecurity) || !strings.Contains(se.Error(), "Redis in production") {
			t.Errorf("%s: %v, want a refused permission (Explain: %v)", r.name, err, se)
		}
	}
	// Subscribing to another channel is refused (the subscription fails).
	sub := e.Subscribe(ctx, p.prefix+"other-channel")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SUBSCRIBE another channel: %v, want NOPERM", err)
	}
	// Nothing the enforcer tried changed the state.
	got, err := syncStore.Lookup(ctx, []string{"s1"})
	if err != nil || got["s1"].Purposes["marketing"].ChangeID != grantAt("s1", 1000).ChangeID {
		t.Fatalf("state after the refused writes: %v %v", got, err)
	}
	if n, err := p.admin.Exists(ctx, other).Result(); err != nil || n != 0 {
		t.Fatalf("another key was written: %d %v", n, err)
	}
}

// TestACLLinesAreDocumented: the README shows exactly the lines the tests
// load.
func TestACLLinesAreDocumented(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := aclTemplate(t)
	names := make([]string, 0, len(lines))
	for _, l := range lines {
		names = append(names, strings.Fields(l)[1])
		if !strings.Contains(string(readme), l+"\n") {
			t.Errorf("README.md does not show the tested ACL line:\n%s", l)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != enforcerUser+","+syncUser {
		t.Errorf("%s has users %v, want %s and %s", aclFile, names, enforcerUser, syncUser)
	}
}

// mastersOf returns the address of the master holding each key.
func mastersOf(t *testing.T, ctx context.Context, rdb *redis.ClusterClient, keys ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range keys {
		m, err := rdb.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = m.Options().Addr
	}
	return out
}

// TestClusterBatchedLookupsMatchASingleServer: the same changes applied to
// a single server and to the 3-master TLS cluster give the same states for
// a batch whose subjects (with duplicates and unknown ones) live on every
// master, with and without the freshness gate.
func TestClusterBatchedLookupsMatchASingleServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProdCluster(t)
	single := NewStore(redistest.Start(t).Client(t), p.prefix)
	clustered := NewStore(p.syn, p.prefix)
	subjects := subjectsOnEveryMaster(t, ctx, clustered, p.admin, 4)
	if m := mastersOf(t, ctx, p.admin, func() []string {
		var ks []string
		for _, s := range subjects {
			ks = append(ks, clustered.Key(s))
		}
		return ks
	}()...); len(distinct(m)) != 3 {
		t.Fatalf("the batch spans %d masters, want 3", len(distinct(m)))
	}
	var changes []Change
	for i, s := range subjects {
		changes = append(changes, grantAt(s, int64(1000+i)))
		switch i % 4 {
		case 1:
			changes = append(changes, Change{ChangeID: "w-" + s, SubjectID: s, Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(int64(3000 + i))})
		case 2:
			changes = append(changes, Change{ChangeID: "e-" + s, SubjectID: s, Action: ActionErase, Source: "test", CapturedAt: time.UnixMilli(int64(4000 + i))})
		case 3:
			c := grantAt(s, int64(2000+i))
			c.Purpose, c.ChangeID = "analytics", "a-"+s
			changes = append(changes, c)
		}
	}
	for _, c := range changes {
		for _, st := range []*Store{single, clustered} {
			if _, err := st.Apply(ctx, c); err != nil {
				t.Fatalf("apply: %v", err)
			}
		}
	}
	batch := append(append([]string{"unknown-1"}, subjects...), subjects[0], subjects[5], "unknown-2")
	want, err := single.Lookup(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	markReplayed(t, clustered, Offsets{tp0: int64(len(changes))})
	for name, st := range map[string]*Store{
		"consent-sync's user":        clustered,
		"the enforcer's user":        NewStore(p.enforcer, p.prefix),
		"the enforcer's user, gated": NewStore(p.enforcer, p.prefix).RequireFresh(freshAt(Offsets{tp0: int64(len(changes))})),
	} {
		got, err := st.Lookup(ctx, batch)
		if err != nil {
			t.Fatalf("%s: cluster lookup: %v", name, err)
		}
		if d := diffStates(want, got); d != "" {
			t.Errorf("%s: the cluster's batch differs from the single server's: %s", name, d)
		}
	}
	cache := NewCache(NewStore(p.enforcer, p.prefix).RequireFresh(freshAt(Offsets{tp0: int64(len(changes))})), p.enforcer, 1000, time.Minute)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	for round := range 2 { // a miss for every subject, then hits
		got, err := cache.Lookup(ctx, batch)
		if err != nil {
			t.Fatalf("cache lookup %d: %v", round, err)
		}
		if d := diffStates(want, got); d != "" {
			t.Errorf("cache lookup %d differs from the single server's: %s", round, d)
		}
	}
	if cache.Hits.Load() == 0 {
		t.Error("the second cache lookup read Redis again for every subject")
	}
}

// awaitInvalidation waits up to 5 s for the invalidation of subject. Others
// may come first: the grants published before the cache subscribed travel
// the cluster bus and can reach the subscribed node after the subscription.
func awaitInvalidation(ch <-chan string, subject string) bool {
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-ch:
			if s == subject {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func distinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// diffStates describes the first difference between two lookups' results
// (subjects are test ids, not personal data).
func diffStates(want, got map[string]*State) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d subjects, want %d", len(got), len(want))
	}
	for s, w := range want {
		g := got[s]
		if g == nil {
			return s + " missing"
		}
		if fmt.Sprintf("%+v", *g) != fmt.Sprintf("%+v", *w) {
			return fmt.Sprintf("%s: %+v, want %+v", s, *g, *w)
		}
	}
	return ""
}

// TestClusterInvalidationsArriveFromEveryShard: the enforcer's cache holds
// one subscription, on one node; a change written on each of the three
// masters reaches it (Redis Cluster forwards PUBLISH over the bus) and
// drops that subject's entry, so the next lookup sees the change.
func TestClusterInvalidationsArriveFromEveryShard(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProdCluster(t)
	syncStore := NewStore(p.syn, p.prefix)
	subjects := subjectsOnEveryMaster(t, ctx, syncStore, p.admin, 1)
	for i, s := range subjects {
		if _, err := syncStore.Apply(ctx, grantAt(s, int64(1000+i))); err != nil {
			t.Fatal(err)
		}
	}
	cache := NewCache(NewStore(p.enforcer, p.prefix), p.enforcer, 100, time.Hour)
	invalidated := make(chan string, 10)
	cache.onInvalidate = func(s string) { invalidated <- s }
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if _, err := cache.Lookup(ctx, subjects); err != nil || cache.Len() != len(subjects) {
		t.Fatalf("fill the cache: %d entries, %v", cache.Len(), err)
	}
	for i, s := range subjects {
		m := mastersOf(t, ctx, p.admin, syncStore.Key(s))[syncStore.Key(s)]
		w := Change{ChangeID: fmt.Sprintf("w-%d", i), SubjectID: s, Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(5000)}
		if _, err := syncStore.Apply(ctx, w); err != nil {
			t.Fatal(err)
		}
		if !awaitInvalidation(invalidated, s) {
			t.Fatalf("no invalidation from the change written on master %s", m)
		}
		st, err := cache.Lookup(ctx, []string{s})
		if err != nil || st[s].Purposes["marketing"].Status != StatusWithdrawn {
			t.Fatalf("lookup after the change on master %s: %v %v, want withdrawn", m, st, err)
		}
	}
	if n := cache.Invalidations.Load(); n < int64(len(subjects)) {
		t.Errorf("%d entries dropped by invalidation, want %d or more", n, len(subjects))
	}
}

// TestClusterFreshnessPerShard: each master in turn is restored from a
// snapshot older than a withdrawal that consent-sync applied and committed
// (the other masters keep their data): lookups of the subject on that
// shard, and of a batch of subjects on the other shards, fail closed
// instead of answering the restored grant, until consent-sync's replay
// marks the shard again. Then the same master restarts empty: lookups fail
// closed again until the replay. (TestWatermarkClusterShardLost shows one
// shard restarting empty on a plain cluster; this runs every shard, on the
// TLS cluster as the enforcer's ACL user.)
func TestClusterFreshnessPerShard(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	p := startProdCluster(t)
	syncStore := NewStore(p.syn, p.prefix)
	subjects := subjectsOnEveryMaster(t, ctx, syncStore, p.admin, 1)
	masters := mastersOf(t, ctx, p.admin, func() []string {
		var ks []string
		for _, s := range subjects {
			ks = append(ks, syncStore.Key(s))
		}
		return ks
	}()...)
	node := func(addr string) *redistest.Server {
		for _, n := range p.Nodes {
			if n.Addr() == addr {
				return n
			}
		}
		t.Fatalf("no node %s", addr)
		return nil
	}
	offset := int64(0)
	for i, s := range subjects {
		if _, err := syncStore.Apply(ctx, grantAt(s, int64(1000+i))); err != nil {
			t.Fatal(err)
		}
		offset++
	}
	markReplayed(t, syncStore, Offsets{tp0: offset})
	fresh := freshAt(Offsets{tp0: offset})
	gated := NewStore(p.enforcer, p.prefix).RequireFresh(fresh)
	for i, s := range subjects {
		others := append(append([]string{}, subjects[:i]...), subjects[i+1:]...)
		shard := node(masters[syncStore.Key(s)])
		shard.Snapshot(t)
		w := Change{ChangeID: fmt.Sprintf("w-%d", i), SubjectID: s, Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(5000)}
		if _, err := syncStore.Apply(ctx, w); err != nil {
			t.Fatal(err)
		}
		if err := syncStore.Advance(ctx, []Range{{tp0, offset, offset + 1}}); err != nil {
			t.Fatal(err)
		}
		offset++
		fresh.Set(Offsets{tp0: offset}, time.Now(), nil) // consent-sync committed it
		if got, err := gated.Lookup(ctx, []string{s}); err != nil || got[s].Purposes["marketing"].Status != StatusWithdrawn {
			t.Fatalf("shard %d: lookup before the restore: %v %v", i, got, err)
		}
		shard.Restart() // from the snapshot: the grant, not the withdrawal
		p.WaitOK(t)
		raw, err := NewStore(p.syn, p.prefix).Lookup(ctx, []string{s})
		for err != nil && ctx.Err() == nil { // the clients reconnect
			time.Sleep(100 * time.Millisecond)
			raw, err = NewStore(p.syn, p.prefix).Lookup(ctx, []string{s})
		}
		if raw[s] == nil || raw[s].Purposes["marketing"].Status != StatusGranted {
			t.Fatalf("shard %d: the restored shard should hold the old grant (test premise): %v %v", i, raw, err)
		}
		for _, batch := range [][]string{{s}, others, subjects} {
			if got, err := gated.Lookup(ctx, batch); !errors.Is(err, ErrCold) {
				t.Fatalf("shard %d restored from an older snapshot: lookup of %d subjects = %v %v, want ErrCold", i, len(batch), got, err)
			}
		}
		// consent-sync replays the topic (the withdrawal again) and marks
		// the shard: lookups resume with the withdrawal.
		if _, err := syncStore.Apply(ctx, w); err != nil {
			t.Fatal(err)
		}
		markReplayed(t, syncStore, Offsets{tp0: offset})
		got, err := gated.Lookup(ctx, subjects)
		if err != nil || got[s].Purposes["marketing"].Status != StatusWithdrawn {
			t.Fatalf("shard %d: lookup after the replay: %v %v", i, got, err)
		}

		// The same shard loses everything (an empty restart): the
		// lookups fail closed, not "unknown subject" from the empty
		// shard, until the replay fills and marks it again.
		shard.DropSnapshot(t)
		shard.Restart()
		p.WaitOK(t)
		for _, batch := range [][]string{{s}, others} {
			var err error
			for err = errors.New("not yet"); err != nil && !errors.Is(err, ErrCold) && ctx.Err() == nil; {
				var got map[string]*State
				if got, err = gated.Lookup(ctx, batch); err == nil {
					t.Fatalf("shard %d restarted empty: lookup of %d subjects answered %v, want ErrCold", i, len(batch), got)
				}
				time.Sleep(50 * time.Millisecond) // errors while the clients reconnect
			}
			if !errors.Is(err, ErrCold) {
				t.Fatalf("shard %d restarted empty: %v, want ErrCold", i, err)
			}
		}
		if _, err := syncStore.Apply(ctx, grantAt(s, int64(1000+i))); err != nil {
			t.Fatal(err)
		}
		if _, err := syncStore.Apply(ctx, w); err != nil {
			t.Fatal(err)
		}
		markReplayed(t, syncStore, Offsets{tp0: offset})
		if got, err := gated.Lookup(ctx, subjects); err != nil || got[s].Purposes["marketing"].Status != StatusWithdrawn {
			t.Fatalf("shard %d: lookup after the replay of the empty shard: %v %v", i, got, err)
		}
	}
}

// TestClusterOutboxAndNotices: on the TLS cluster, as consent-sync's user,
// a withdrawal and an erasure of subjects on every master record their
// notices in the outbox beside the state (same slot, so the apply script
// can write both), a redelivery after a newer change finds the same notice,
// an acknowledgement removes it, and a change applied while the state is
// incomplete owes one.
func TestClusterOutboxAndNotices(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startProdCluster(t)
	st := NewStore(p.syn, p.prefix)
	subjects := subjectsOnEveryMaster(t, ctx, st, p.admin, 1)
	for i, s := range subjects {
		m := mastersOf(t, ctx, p.admin, st.Key(s), st.OutboxKey(s))
		if m[st.Key(s)] != m[st.OutboxKey(s)] {
			t.Fatalf("the outbox of a subject lives on another master than its state")
		}
		if _, err := st.Apply(ctx, grantAt(s, 1000)); err != nil {
			t.Fatal(err)
		}
		w := Change{ChangeID: fmt.Sprintf("w-%d", i), SubjectID: s, Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(2000)}
		o, err := st.Apply(ctx, w)
		if err != nil || !o.Applied || !o.NoticeDue || o.Notice.Reason != NoticeGrantReplaced {
			t.Fatalf("master %s: withdrawal: %+v %v, want a grant_replaced notice", m[st.Key(s)], o, err)
		}
		// A newer grant, then the withdrawal redelivered: the same notice.
		if _, err := st.Apply(ctx, grantAt(s, 3000)); err != nil {
			t.Fatal(err)
		}
		again, err := st.Apply(ctx, w)
		if err != nil || again.Applied || !again.NoticeDue || again.Notice != o.Notice {
			t.Fatalf("master %s: redelivered withdrawal: %+v %v, want notice %+v", m[st.Key(s)], again, err, o.Notice)
		}
		if err := st.AckNotice(ctx, s, w.ChangeID); err != nil {
			t.Fatal(err)
		}
		if left, err := p.admin.HExists(ctx, st.OutboxKey(s), w.ChangeID).Result(); err != nil || left {
			t.Fatalf("master %s: the outbox entry is still there after the acknowledgement: %v", m[st.Key(s)], err)
		}
		e := Change{ChangeID: fmt.Sprintf("e-%d", i), SubjectID: s, Action: ActionErase, Source: "test", CapturedAt: time.UnixMilli(4000)}
		if o, err := st.Apply(ctx, e); err != nil || !o.Erased || !o.NoticeDue || o.Notice.Reason != NoticeErased {
			t.Fatalf("master %s: erasure: %+v %v", m[st.Key(s)], o, err)
		}
		d := Change{ChangeID: fmt.Sprintf("d-%d", i), SubjectID: s, Purpose: "analytics", Action: ActionDeny, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(5000)}
		if o, err := st.ApplyWith(ctx, d, ApplyOptions{StateIncomplete: true}); err != nil || !o.NoticeDue || o.Notice.Reason != NoticeStateIncomplete {
			t.Fatalf("master %s: denial on an incomplete state: %+v %v", m[st.Key(s)], o, err)
		}
	}
	if d := p.aclDenials(t); len(d) > 0 {
		t.Fatalf("refused: %v", d)
	}
}
