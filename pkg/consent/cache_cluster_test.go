package consent

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redistest"
)

func TestMastersOfShards(t *testing.T) {
	t.Parallel()
	node := func(id, ip string, port, tlsPort int64, role, health string) redis.Node {
		return redis.Node{ID: id, Endpoint: ip, IP: ip, Port: port, TLSPort: tlsPort, Role: role, Health: health}
	}
	slots := []redis.SlotRange{{Start: 0, End: 100}}
	a := redis.ClusterShard{Slots: slots, Nodes: []redis.Node{node("a", "10.0.0.1", 6379, 0, "master", "online"), node("ar", "10.0.0.4", 6379, 0, "replica", "online")}}
	b := redis.ClusterShard{Slots: []redis.SlotRange{{Start: 101, End: 16383}}, Nodes: []redis.Node{node("b", "10.0.0.2", 6379, 0, "master", "online")}}
	empty := redis.ClusterShard{Nodes: []redis.Node{node("c", "10.0.0.3", 6379, 0, "master", "online")}}
	failedEmpty := redis.ClusterShard{Nodes: []redis.Node{node("d", "10.0.0.5", 6379, 0, "master", "failed")}}
	failedWithSlots := redis.ClusterShard{Slots: slots, Nodes: []redis.Node{node("e", "10.0.0.6", 6379, 0, "master", "failed")}}
	lonely := []redis.ClusterShard{{Nodes: []redis.Node{node("z", "10.0.0.9", 6379, 0, "master", "online")}}}
	tlsOnly := redis.ClusterShard{Slots: slots, Nodes: []redis.Node{node("t", "10.0.0.7", 0, 6380, "master", "online")}}
	both := redis.ClusterShard{Slots: slots, Nodes: []redis.Node{node("u", "10.0.0.8", 6379, 6380, "master", "online")}}
	noAddr := redis.ClusterShard{Slots: slots, Nodes: []redis.Node{node("n", "?", 6379, 0, "master", "online")}}
	loop := redis.ClusterShard{Slots: slots, Nodes: []redis.Node{node("l", "127.0.0.1", 7001, 0, "master", "online")}}
	hostname := redis.ClusterShard{Slots: slots, Nodes: []redis.Node{{ID: "h", Endpoint: "redis-1.internal", IP: "10.0.0.1", Port: 6379, Role: "master", Health: "online"}}}
	tests := []struct {
		name    string
		answers [][]redis.ClusterShard
		origin  string // of every answer; "" for 10.0.0.1:6379
		tls     bool
		want    []string // nil: an error
	}{
		{"masters with slots, not replicas", [][]redis.ClusterShard{{a, b}}, "", false, []string{"10.0.0.1:6379", "10.0.0.2:6379"}},
		{"a master without slots is kept (added for a reshard)", [][]redis.ClusterShard{{a, b, empty}}, "", false, []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}},
		{"a failed master without slots is not (replaced by its replica)", [][]redis.ClusterShard{{a, b, failedEmpty}}, "", false, []string{"10.0.0.1:6379", "10.0.0.2:6379"}},
		{"a failed master with slots is kept", [][]redis.ClusterShard{{failedWithSlots, b}}, "", false, []string{"10.0.0.2:6379", "10.0.0.6:6379"}},
		{"a node that knows no slot is not believed (removed and reset)", [][]redis.ClusterShard{{a, b}, lonely}, "", false, []string{"10.0.0.1:6379", "10.0.0.2:6379"}},
		{"the union of the answers", [][]redis.ClusterShard{{a, b}, {a, b, empty}}, "", false, []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}},
		{"only nodes that know no slot", [][]redis.ClusterShard{lonely, lonely}, "", false, nil},
		{"no answer", nil, "", false, nil},
		{"TLS port when the client uses TLS", [][]redis.ClusterShard{{both}}, "", true, []string{"10.0.0.8:6380"}},
		{"plain port without TLS", [][]redis.ClusterShard{{both}}, "", false, []string{"10.0.0.8:6379"}},
		{"TLS port when there is no plain one", [][]redis.ClusterShard{{tlsOnly}}, "", true, []string{"10.0.0.7:6380"}},
		{"the preferred endpoint (a hostname)", [][]redis.ClusterShard{{hostname}}, "", false, []string{"redis-1.internal:6379"}},
		{"a loopback address reached at another host is that host's", [][]redis.ClusterShard{{loop}}, "redis-1.internal:6379", false, []string{"redis-1.internal:7001"}},
		{"a loopback address reached at loopback stays", [][]redis.ClusterShard{{loop}}, "127.0.0.1:6379", false, []string{"127.0.0.1:7001"}},
		{"a master with slots and no address", [][]redis.ClusterShard{{b, noAddr}}, "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			origin := tt.origin
			if origin == "" {
				origin = "10.0.0.1:6379"
			}
			var answers []shardsAnswer
			for _, a := range tt.answers {
				answers = append(answers, shardsAnswer{origin: origin, shards: a})
			}
			got, err := mastersOfShards(answers, tt.tls)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("masters %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var addrs []string
			for a := range got {
				addrs = append(addrs, a)
			}
			sort.Strings(addrs)
			if strings.Join(addrs, ",") != strings.Join(tt.want, ",") {
				t.Errorf("masters %v, want %v", addrs, tt.want)
			}
		})
	}
}

// numSub returns how many clients of the node at cl subscribe to channel.
func numSub(t *testing.T, ctx context.Context, cl *redis.Client, channel string) int64 {
	t.Helper()
	n, err := cl.PubSubNumSub(ctx, channel).Result()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB on %s: %v", cl.Options().Addr, err)
	}
	return n[channel]
}

// TestClusterCacheFollowsTheMasters: the cache subscribes on every master;
// a master added to the cluster (without slots yet, as before a reshard)
// gets a subscription within a few heartbeats, the cache is emptied and
// live again once it is confirmed; when that node is removed (forgotten by
// the others and reset, as redis-cli --cluster del-node does) its
// subscription is closed and the cache stays live on the others.
func TestClusterCacheFollowsTheMasters(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := redistest.StartCluster(t, 3)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bus := l.Addr().(*net.TCPAddr).Port
	l.Close()
	extra := redistest.StartWith(t, redistest.Options{Args: []string{"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--cluster-port", fmt.Sprint(bus)}})
	extraCl := extra.Client(t)

	store := NewStore(c.Client(t), redistest.PrefixFor(t))
	ch := store.InvalidationChannel()
	if _, err := store.Apply(ctx, grantAt("s1", 1000)); err != nil {
		t.Fatal(err)
	}
	cache := NewCache(store, c.Client(t), 100, time.Hour)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	var masters []*redis.Client
	for _, n := range c.Nodes {
		cl := redis.NewClient(n.Options())
		t.Cleanup(func() { _ = cl.Close() })
		masters = append(masters, cl)
		if got := numSub(t, ctx, cl, ch); got != 1 {
			t.Errorf("master %s has %d subscriptions to the invalidations, want 1", n.Addr(), got)
		}
	}
	if _, err := cache.Lookup(ctx, []string{"s1"}); err != nil || cache.Len() != 1 || !cache.Live() {
		t.Fatalf("fill the cache: %v (len %d, live %v)", err, cache.Len(), cache.Live())
	}

	host, port, _ := strings.Cut(extra.Addr(), ":")
	if err := masters[0].Do(ctx, "CLUSTER", "MEET", host, port, bus).Err(); err != nil {
		t.Fatalf("CLUSTER MEET: %v", err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("a subscription on the added master", func() bool { return numSub(t, ctx, extraCl, ch) == 1 })
	if n := cache.Len(); n != 0 {
		t.Errorf("the cache kept %d entries when a master was added", n)
	}
	waitFor("the cache live again", cache.Live)

	// Remove it: the others forget it, it resets (redis-cli del-node).
	id, err := extraCl.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	waitFor("every master knows the added one", func() bool {
		for _, m := range masters {
			if v, err := m.ClusterNodes(ctx).Result(); err != nil || !strings.Contains(v, id) {
				return false
			}
		}
		return true
	})
	for _, m := range masters {
		if err := m.ClusterForget(ctx, id).Err(); err != nil {
			t.Fatalf("CLUSTER FORGET: %v", err)
		}
	}
	if err := extraCl.Do(ctx, "CLUSTER", "RESET", "SOFT").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor("the removed node's subscription closed", func() bool { return numSub(t, ctx, extraCl, ch) == 0 })
	waitFor("the cache live on the remaining masters", cache.Live)
	for _, m := range masters {
		if got := numSub(t, ctx, m, ch); got != 1 {
			t.Errorf("master %s has %d subscriptions after the removal, want 1", m.Options().Addr, got)
		}
	}
}
