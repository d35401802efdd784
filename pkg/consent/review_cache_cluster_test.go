package consent

// Adversarial review of the consent cache on a Redis Cluster (a subscription
// on every master, the watcher of the set of masters; cache_cluster.go).
// Each test states what must hold; a failure is a finding of the review.

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// reviewFreePort returns a free loopback port (for a node's cluster bus).
func reviewFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// reviewAddReplica starts a cluster-enabled redis-server and joins it to
// the cluster as a replica of master (redis-cli --cluster add-node
// --cluster-slave), and waits until it has synchronised with its master and
// every node knows it.
func reviewAddReplica(t *testing.T, ctx context.Context, c *redistest.Cluster, master *redistest.Server) *redistest.Server {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal(err)
	}
	r := redistest.StartWith(t, redistest.Options{Args: []string{"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
		"--cluster-port", fmt.Sprint(reviewFreePort(t))}})
	mcl := redis.NewClient(master.Options())
	defer mcl.Close()
	id, err := mcl.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, cli, "--cluster", "add-node", r.Addr(), master.Addr(),
		"--cluster-slave", "--cluster-master-id", id).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster add-node --cluster-slave: %v\n%s", err, out)
	}
	rcl := redis.NewClient(r.Options())
	defer rcl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, _ := rcl.Info(ctx, "replication").Result()
		known := true
		for _, n := range c.Nodes {
			cl := redis.NewClient(n.Options())
			ci, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			known = known && err == nil && strings.Contains(ci, fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes)+1))
		}
		if known && strings.Contains(info, "master_link_status:up") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not synchronise with its master: %s", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReviewClusterCacheLiveAgainAfterAFailover: a master dies for good (its
// machine is gone) and its replica takes over its slots, the failover Redis
// Cluster exists for. Every node then lists the dead master in CLUSTER
// SHARDS as a master without slots whose health is "fail" (Redis 7.0: the
// word is "fail", the documentation says "failed"). mastersOfShards drops a
// failed master without slots only when its health is "failed", so the
// cache keeps the dead node in its set of masters, waits forever for its
// subscription, and never serves from memory again (the enforcer's
// readiness check "consent-cache" fails for good); and an enforcer started
// after the failover cannot start at all: Start tries to subscribe on the
// dead node and fails, so the pod crash-loops until an operator makes every
// node forget the dead one.
func TestReviewClusterCacheLiveAgainAfterAFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := redistest.StartCluster(t, 3)
	dead := c.Nodes[0]
	replica := reviewAddReplica(t, ctx, c, dead)

	enf := c.Client(t)
	store := NewStore(enf, redistest.PrefixFor(t))
	var subject string
	for i := 0; subject == ""; i++ {
		s := fmt.Sprintf("subj-%d", i)
		m, err := enf.MasterForKey(ctx, store.Key(s))
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == dead.Addr() {
			subject = s
		}
	}
	if _, err := store.Apply(ctx, grantAt(subject, 1000)); err != nil {
		t.Fatal(err)
	}
	cache := NewCache(store, enf, 100, time.Hour)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if !cache.Live() {
		t.Fatalf("the cache is not live after Start")
	}

	// The master dies; its replica takes over (TAKEOVER: at once, as an
	// automatic failover does after the node timeout).
	dead.Stop()
	rcl := replica.Client(t)
	others := redis.NewClient(c.Nodes[1].Options())
	defer others.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _ := others.ClusterNodes(ctx).Result()
		if strings.Contains(v, "master,fail") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead master was not marked failed: %s", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := rcl.Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER TAKEOVER: %v", err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		info, _ := others.ClusterInfo(ctx).Result()
		role, _ := rcl.Do(ctx, "ROLE").Slice()
		if strings.Contains(info, "cluster_state:ok") && len(role) > 0 && role[0] == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not take over: %s", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	shards, err := others.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var deadHealth string
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if net.JoinHostPort(n.Endpoint, fmt.Sprint(n.Port)) == dead.Addr() {
				deadHealth = fmt.Sprintf("role %s, %d slot ranges, health %q", n.Role, len(sh.Slots), n.Health)
			}
		}
	}
	t.Logf("CLUSTER SHARDS lists the dead master: %s", deadHealth)

	// The cluster serves every slot again: within a few heartbeats the
	// cache sees the new master, subscribes and is live.
	deadline = time.Now().Add(15 * time.Second)
	for !cache.Live() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !cache.Live() {
		cache.mu.Lock()
		var waiting []string
		for addr, n := range cache.nodes {
			if !n.confirmed {
				waiting = append(waiting, addr)
			}
		}
		cache.mu.Unlock()
		t.Errorf("15s after the replica took over the dead master's slots (cluster_state:ok), the cache is still not live: it waits for the subscriptions on %v (the dead master %s: %s)", waiting, dead.Addr(), deadHealth)
	}

	// An enforcer started now.
	fresh := NewCache(NewStore(c.Client(t), store.prefix), c.Client(t), 100, time.Hour)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	err = fresh.Start(sctx)
	scancel()
	if err != nil {
		t.Errorf("an enforcer started after the failover cannot start its cache (the enforcer exits): %v", err)
	} else {
		fresh.Close()
	}
}

// TestReviewClusterCacheAfterAManualFailover: a replica is promoted while
// its master is up (CLUSTER FAILOVER, as for maintenance): the old master,
// now a replica, loses its subscription; the new master gets one; the cache
// is emptied and live again; a withdrawal written on the new master right
// after the promotion (before the watcher's next look) is never answered
// from memory as a grant once it is in Redis. (Checked sound in the
// review.)
func TestReviewClusterCacheAfterAManualFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := redistest.StartCluster(t, 3)
	old := c.Nodes[0]
	replica := reviewAddReplica(t, ctx, c, old)
	enf := c.Client(t)
	syncStore := NewStore(c.Client(t), redistest.PrefixFor(t))
	store := NewStore(enf, syncStore.prefix)
	ch := store.InvalidationChannel()
	var subject string
	for i := 0; subject == ""; i++ {
		s := fmt.Sprintf("subj-%d", i)
		m, err := enf.MasterForKey(ctx, store.Key(s))
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == old.Addr() {
			subject = s
		}
	}
	if _, err := syncStore.Apply(ctx, grantAt(subject, 1000)); err != nil {
		t.Fatal(err)
	}
	cache := NewCache(store, enf, 100, time.Hour)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if st, err := cache.Lookup(ctx, []string{subject}); err != nil || st[subject].Purposes["marketing"].Status != StatusGranted || cache.Len() != 1 {
		t.Fatalf("fill the cache: %v %v", st, err)
	}
	oldCl, rcl := old.Client(t), replica.Client(t)
	if err := rcl.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER: %v", err)
	}
	for {
		role, _ := rcl.Do(ctx, "ROLE").Slice()
		if len(role) > 0 && role[0] == "master" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the replica was not promoted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// At once: the withdrawal goes to the new master.
	w := Change{ChangeID: "w-1", SubjectID: subject, Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(5000)}
	for {
		_, err := syncStore.Apply(ctx, w)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("withdraw: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	written := time.Now()
	stale := 0
	for time.Since(written) < 3*time.Second {
		st, err := cache.Lookup(ctx, []string{subject})
		if err == nil && st[subject] != nil && st[subject].Purposes["marketing"].Status == StatusGranted && time.Since(written) > 50*time.Millisecond {
			stale++
		}
		time.Sleep(10 * time.Millisecond)
	}
	if stale > 0 {
		t.Errorf("after a manual failover the cache served the withdrawn grant %d times, more than 50ms after the withdrawal was written on the new master", stale)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !(cache.Live() && numSub(t, ctx, rcl, ch) == 1 && numSub(t, ctx, oldCl, ch) == 0) {
		time.Sleep(50 * time.Millisecond)
	}
	if !cache.Live() || numSub(t, ctx, rcl, ch) != 1 || numSub(t, ctx, oldCl, ch) != 0 {
		t.Errorf("after the failover: live %v, %d subscriptions on the new master (want 1), %d on the demoted one (want 0)", cache.Live(), numSub(t, ctx, rcl, ch), numSub(t, ctx, oldCl, ch))
	}
}

// reviewCacheGoroutines counts the goroutines running the cache's
// listeners and watcher.
func reviewCacheGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "consent.(*Cache).listen") || strings.Contains(g, "consent.(*Cache).watchCluster") || strings.Contains(g, "consent.(*Cache).startNode") {
			n++
		}
	}
	return n
}

// TestReviewClusterCacheLeavesNothingRunning: masters come and go (one is
// added and removed with CLUSTER FORGET and RESET, one is added and dies);
// after Close no listener or watcher goroutine is left and no master holds
// a subscription of the cache. Not parallel: it counts the process's
// goroutines. (Checked sound in the review.)
func TestReviewClusterCacheLeavesNothingRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := redistest.StartCluster(t, 3)
	enf := c.Client(t)
	store := NewStore(enf, redistest.PrefixFor(t))
	ch := store.InvalidationChannel()
	before := reviewCacheGoroutines()
	cache := NewCache(store, enf, 100, time.Hour)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The watcher's goroutine may not have run yet when Start returns
	// (its stack shows then only the closure that calls watchCluster).
	for deadline := time.Now().Add(2 * time.Second); reviewCacheGoroutines() < before+4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := reviewCacheGoroutines(); n < before+4 {
		t.Fatalf("the count sees %d goroutines of the cache running (watcher and three listeners), %d before", n, before)
	}
	var masters []*redis.Client
	for _, n := range c.Nodes {
		masters = append(masters, n.Client(t))
	}
	waitLong := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	addNode := func() (*redistest.Server, *redis.Client) {
		bus := reviewFreePort(t)
		s := redistest.StartWith(t, redistest.Options{Args: []string{"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--cluster-port", fmt.Sprint(bus)}})
		cl := s.Client(t)
		host, port, _ := strings.Cut(s.Addr(), ":")
		if err := masters[0].Do(ctx, "CLUSTER", "MEET", host, port, bus).Err(); err != nil {
			t.Fatalf("CLUSTER MEET: %v", err)
		}
		waitLong("a subscription on the added master", func() bool { return numSub(t, ctx, cl, ch) == 1 })
		waitLong("the cache live again", cache.Live)
		return s, cl
	}
	// Added, then removed as redis-cli del-node does.
	_, cl1 := addNode()
	id, err := cl1.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	waitLong("every master knows the added one", func() bool {
		for _, m := range masters {
			if v, err := m.ClusterNodes(ctx).Result(); err != nil || !strings.Contains(v, id) {
				return false
			}
		}
		return true
	})
	for _, m := range masters {
		if err := m.ClusterForget(ctx, id).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl1.Do(ctx, "CLUSTER", "RESET", "SOFT").Err(); err != nil {
		t.Fatal(err)
	}
	waitLong("the removed node's subscription closed", func() bool { return numSub(t, ctx, cl1, ch) == 0 })
	// Added, then dead.
	s2, _ := addNode()
	s2.Stop()
	time.Sleep(3 * time.Second)

	cache.Close()
	deadline := time.Now().Add(5 * time.Second)
	for reviewCacheGoroutines() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := reviewCacheGoroutines(); n > before {
		t.Errorf("after Close, %d goroutines of the cache still run (%d before Start)", n, before)
	}
	for _, m := range append(masters, cl1) {
		if n := numSub(t, ctx, m, ch); n != 0 {
			t.Errorf("after Close, %s holds %d subscriptions of the cache", m.Options().Addr, n)
		}
	}
}

// TestReviewClusterHasWatermarkDuringAMigrationAndAnOutage: consent-sync's
// rebuild refuses to run over existing consent state by looking for a
// watermark hash of the prefix (Store.HasWatermark, as consent-sync's ACL
// user). Here only one watermark hash is left and it is in flight: its slot
// is MIGRATING and the key already moved to the importing node (the source
// answers ASK). The hash must still be found; and with a master down the
// look must fail, never answer "none". (Checked sound in the review.)
func TestReviewClusterHasWatermarkDuringAMigrationAndAnOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := redistest.PrefixFor(t)
	pw := map[string]string{enforcerUser: "enf-review-pw", syncUser: "sync-review-pw"}
	c := redistest.StartClusterWith(t, 3, redistest.Options{Users: aclLines(t, prefix, pw)})
	admin := c.Client(t)
	o := c.Options()
	o.Username, o.Password, o.DisableIdentity = syncUser, pw[syncUser], true
	syn := redis.NewClusterClient(o)
	t.Cleanup(func() { _ = syn.Close() })
	st := NewStore(syn, prefix)
	if _, err := st.Apply(ctx, grantAt("someone", 1000)); err != nil {
		t.Fatal(err)
	}
	keys, err := st.WatermarkKeys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("watermark keys %v %v", keys, err)
	}
	if err := admin.Del(ctx, keys[1]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Del(ctx, keys[2]).Err(); err != nil {
		t.Fatal(err)
	}
	key := keys[0]
	slot, err := admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	srcCl, err := admin.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var src, dst *redis.Client
	for _, n := range c.Nodes {
		cl := n.Client(t)
		if n.Addr() == srcCl.Options().Addr {
			src = cl
		} else if dst == nil {
			dst = cl
		}
	}
	srcID, _ := src.ClusterMyID(ctx).Result()
	dstID, _ := dst.ClusterMyID(ctx).Result()
	if err := dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(dst.Options().Addr, ":")
	ao := dst.Options()
	if err := src.Do(ctx, "MIGRATE", host, port, "", 0, 5000, "AUTH2", ao.Username, ao.Password, "KEYS", key).Err(); err != nil {
		t.Fatalf("MIGRATE: %v", err)
	}
	if n, _ := src.Exists(ctx, key).Result(); n != 0 {
		t.Fatalf("the key is still on the source")
	}
	has, err := st.HasWatermark(ctx)
	if err != nil || !has {
		t.Errorf("with the only watermark hash in a migrating slot (moved: the source answers ASK), HasWatermark = %v, %v; want true", has, err)
	}

	// A master down (not the one holding the hash): the look fails.
	var down *redistest.Server
	for _, n := range c.Nodes {
		if n.Addr() != src.Options().Addr && n.Addr() != dst.Options().Addr {
			down = n
		}
	}
	// As the administrator (consent-sync's user may not read another
	// prefix), for a prefix that holds nothing.
	other := NewStore(admin, "other-"+prefix)
	if has, err := other.HasWatermark(ctx); err != nil || has {
		t.Fatalf("control: HasWatermark of an unused prefix: %v %v", has, err)
	}
	down.Stop()
	has, err = other.HasWatermark(ctx)
	if err == nil {
		t.Errorf("with a master down, HasWatermark of a prefix without state answered %v without an error; want an error (the down master may hold the hash)", has)
	}
}

// TestReviewClusterCacheDistrustsOneSilentMaster: the enforcer reaches one
// master through a custom dialer (a NAT, a tunnel: ClusterOptions.Dialer,
// which the per-master clients must use too), and that path goes silent
// (half-open: nothing forwarded, nothing closed) while the other masters
// answer CLUSTER SHARDS as before. The cache must stop serving from memory
// within a few heartbeats. (Checked sound in the review.)
func TestReviewClusterCacheDistrustsOneSilentMaster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := redistest.StartCluster(t, 3)
	silent := c.Nodes[1]
	proxy := startStallProxy(t, silent.Addr())
	o := c.Options()
	o.ReadTimeout, o.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == silent.Addr() {
			addr = proxy.ln.Addr().String()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	enf := redis.NewClusterClient(o)
	t.Cleanup(func() { _ = enf.Close() })
	store := NewStore(enf, redistest.PrefixFor(t))
	cache := NewCache(store, enf, 100, time.Hour)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	proxy.mu.Lock()
	through := len(proxy.conns)
	proxy.mu.Unlock()
	if through == 0 || !cache.Live() {
		t.Fatalf("control: %d connections through the dialer's path, live %v", through, cache.Live())
	}
	proxy.Stall()
	stalled := time.Now()
	for cache.Live() && time.Since(stalled) < 5*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if cache.Live() {
		t.Errorf("5s after the path to master %s went silent, the cache is still live", silent.Addr())
	} else {
		t.Logf("the cache stopped serving from memory %v after the path went silent", time.Since(stalled).Round(10*time.Millisecond))
	}
}

// TestReviewClusterACLWatermarkPatternStaysInsideThePrefix: the documented
// ACL lines give both users the key pattern <prefix>consent:!watermark*,
// whose trailing * also matches every key of another tenant whose prefix
// begins with <prefix>consent:!watermark (a prefix the services accept: no
// glob character, no brace). Tenant "tenant-a:"'s enforcer then reads, and
// its consent-sync writes, the consent state of tenant
// "tenant-a:consent:!watermark-b:" (the subject ids and their consent).
func TestReviewClusterACLWatermarkPatternStaysInsideThePrefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const own, neighbour = "tenant-a:", "tenant-a:consent:!watermark-b:"
	admin, enf, syn := reviewUsers(t, own)
	if _, err := NewStore(syn, own).Apply(ctx, grantAt("bob", 1000)); err != nil {
		t.Fatalf("consent-sync in its own prefix: %v", err)
	}
	other := NewStore(admin, neighbour)
	if _, err := other.Apply(ctx, grantAt("alice", 1000)); err != nil {
		t.Fatal(err)
	}
	if got, err := enf.HGetAll(ctx, other.Key("alice")).Result(); err == nil {
		t.Errorf("the enforcer's user of prefix %s read %s's consent state of alice (%d fields); want NOPERM", own, neighbour, len(got))
	}
	if err := syn.HSet(ctx, other.Key("alice"), "forged", "1").Err(); err == nil {
		t.Errorf("consent-sync's user of prefix %s wrote into %s's consent state of alice; want NOPERM", own, neighbour)
	}
}

// TestReviewClusterMastersOfShardsDropsTheReplacedMaster: the answers of
// CLUSTER SHARDS after a master died and its replica took over, as Redis
// gives them (health "fail", never "failed"): Redis 7.0 lists the dead
// master in a shard of its own without slots (seen on 7.0.15 in
// TestReviewClusterCacheLiveAgainAfterAFailover); Redis 7.2 and later group
// nodes by shard id, so the dead master stays in the shard of the replica
// that replaced it, whose slots the shard shows (clusterGetMasterFromShard
// takes them from the first node that is not failing). In both the set of
// masters to subscribe on is the live ones; a dead master kept in it makes
// the cache wait for its subscription for ever.
func TestReviewClusterMastersOfShardsDropsTheReplacedMaster(t *testing.T) {
	t.Parallel()
	node := func(id, ip, role, health string) redis.Node {
		return redis.Node{ID: id, Endpoint: ip, IP: ip, Port: 6379, Role: role, Health: health}
	}
	slotsA := []redis.SlotRange{{Start: 0, End: 8191}}
	slotsB := []redis.SlotRange{{Start: 8192, End: 16383}}
	promoted := node("r", "10.0.0.4", "master", "online")
	dead := node("a", "10.0.0.1", "master", "fail")
	b := redis.ClusterShard{Slots: slotsB, Nodes: []redis.Node{node("b", "10.0.0.2", "master", "online")}}
	tests := []struct {
		name   string
		shards []redis.ClusterShard
	}{
		{"Redis 7.0: the dead master in a shard of its own", []redis.ClusterShard{
			{Slots: slotsA, Nodes: []redis.Node{promoted}}, b, {Nodes: []redis.Node{dead}}}},
		{"Redis 7.2 on: the dead master in the shard of its promoted replica", []redis.ClusterShard{
			{Slots: slotsA, Nodes: []redis.Node{dead, promoted}}, b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mastersOfShards([]shardsAnswer{{origin: "10.0.0.2:6379", shards: tt.shards}}, false)
			if err != nil {
				t.Fatal(err)
			}
			if got["10.0.0.1:6379"] {
				t.Errorf("masters %v include the dead master 10.0.0.1:6379 (health \"fail\", replaced by 10.0.0.4:6379)", got)
			}
			if !got["10.0.0.4:6379"] || !got["10.0.0.2:6379"] {
				t.Errorf("masters %v miss a live one", got)
			}
		})
	}
}
