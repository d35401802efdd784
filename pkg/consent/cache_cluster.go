package consent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// On a Redis Cluster the cache subscribes on every master, not on the one
// node go-redis would pick for the channel: the store's script publishes on
// the master that holds the subject, and a PUBLISH reaches the subscribers
// of its own node without the cluster bus, but those of other nodes only
// over it. With a subscription on every master, an invalidation needs no
// bus (see "On a Redis Cluster" on [Cache]).
//
// A watcher asks every subscribed master for the cluster's shards (CLUSTER
// SHARDS) every Heartbeat and keeps one subscription per master it finds,
// masters without slots included, so that a master added for a reshard is
// subscribed before slots move to it. When the set changes, the cache is
// emptied and stays off until every new subscription is confirmed;
// subscriptions on nodes that left are closed.

// A nodeSub is the invalidation subscription on one master.
type nodeSub struct {
	addr      string
	client    *redis.Client
	confirmed bool // under Cache.mu: subscription confirmed, not broken since
	cancel    context.CancelFunc
	done      chan struct{}
}

func (c *Cache) startCluster(ctx context.Context, cc *redis.ClusterClient) error {
	masters, err := c.clusterMasters(ctx, cc)
	if err != nil {
		return errors.New("subscribe to consent invalidations: " + err.Error())
	}
	bg, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	// Not viewOK until every master is subscribed: a listener that
	// reconnects meanwhile must not make the cache live on a part.
	c.nodes, c.viewOK = make(map[string]*nodeSub), false
	c.mu.Unlock()
	// A master whose subscription cannot be confirmed now (down, not yet
	// failed over) does not stop the start: it is kept unconfirmed, its
	// listener subscribes again until it answers, and the cache stays off
	// (every lookup reads Redis) until then, which is the closed side. An
	// enforcer that exited instead would only crash-loop until an operator
	// repaired the cluster.
	for addr := range masters {
		n := newNodeSub(cc.Options(), addr)
		sub := n.client.Subscribe(context.Background(), c.store.InvalidationChannel())
		_, err := sub.Receive(ctx)
		c.mu.Lock()
		c.nodes[addr] = n
		if err == nil {
			n.confirmed = true
			c.startNode(bg, n, sub)
		} else {
			_ = sub.Close()
			c.startNode(bg, n, nil)
		}
		c.mu.Unlock()
		if ctx.Err() != nil {
			cancel()
			c.stopNodes()
			return fmt.Errorf("subscribe to consent invalidations: %w", ctx.Err())
		}
	}
	c.mu.Lock()
	c.viewOK = true
	c.updateLiveLocked(true)
	c.mu.Unlock()
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.watchCluster(bg, cc)
	}()
	return nil
}

// newNodeSub returns the subscription of the master at addr (not started),
// with a client made like go-redis makes its own for each node.
func newNodeSub(o *redis.ClusterOptions, addr string) *nodeSub {
	opt := nodeOptions(o, addr)
	newClient := redis.NewClient
	if o.NewClient != nil {
		newClient = o.NewClient
	}
	return &nodeSub{addr: addr, client: newClient(opt)}
}

// nodeOptions are the options of a client of the cluster's node addr: the
// cluster client's connection settings (user, password, TLS, dialer,
// timeouts), and a small pool (the subscription has its own connection;
// the pool serves CLUSTER SHARDS).
func nodeOptions(o *redis.ClusterOptions, addr string) *redis.Options {
	opt := &redis.Options{
		Addr:                         addr,
		ClientName:                   o.ClientName,
		Dialer:                       o.Dialer,
		OnConnect:                    o.OnConnect,
		Protocol:                     o.Protocol,
		Username:                     o.Username,
		Password:                     o.Password,
		CredentialsProvider:          o.CredentialsProvider,
		CredentialsProviderContext:   o.CredentialsProviderContext,
		StreamingCredentialsProvider: o.StreamingCredentialsProvider,
		MaxRetries:                   o.MaxRetries,
		MinRetryBackoff:              o.MinRetryBackoff,
		MaxRetryBackoff:              o.MaxRetryBackoff,
		DialTimeout:                  o.DialTimeout,
		ReadTimeout:                  o.ReadTimeout,
		WriteTimeout:                 o.WriteTimeout,
		ContextTimeoutEnabled:        o.ContextTimeoutEnabled,
		PoolTimeout:                  o.PoolTimeout,
		PoolSize:                     2,
		ConnMaxIdleTime:              o.ConnMaxIdleTime,
		ConnMaxLifetime:              o.ConnMaxLifetime,
		TLSConfig:                    o.TLSConfig,
		DisableIdentity:              o.DisableIdentity,
		DisableIndentity:             o.DisableIndentity, //nolint:staticcheck // copied as go-redis does
		IdentitySuffix:               o.IdentitySuffix,
		UnstableResp3:                o.UnstableResp3,
	}
	if o.MaintNotificationsConfig != nil {
		m := *o.MaintNotificationsConfig
		opt.MaintNotificationsConfig = &m
	}
	return opt
}

// startNode runs n's subscription (sub, or a new one when nil) until ctx
// ends or n is stopped. c.mu is held.
func (c *Cache) startNode(ctx context.Context, n *nodeSub, sub *redis.PubSub) {
	nctx, cancel := context.WithCancel(ctx)
	n.cancel, n.done = cancel, make(chan struct{})
	resubscribe := func(ctx context.Context) *redis.PubSub {
		return n.client.Subscribe(ctx, c.store.InvalidationChannel())
	}
	go func() {
		defer close(n.done)
		if sub == nil {
			sub = resubscribe(nctx)
		}
		c.listen(nctx, sub, resubscribe, func(live bool) { c.setNodeLive(n, live) })
	}()
}

// stopNode ends n's subscription and closes its client. c.mu is not held
// (n's listener may be waiting for it).
func stopNode(n *nodeSub) {
	if n.cancel != nil {
		n.cancel()
		<-n.done
	}
	_ = n.client.Close()
}

// stopNodes ends every node's subscription.
func (c *Cache) stopNodes() {
	c.mu.Lock()
	nodes := c.nodes
	if nodes == nil {
		c.mu.Unlock()
		return
	}
	c.nodes, c.viewOK = nil, false
	c.updateLiveLocked(false)
	c.mu.Unlock()
	for _, n := range nodes {
		stopNode(n)
	}
}

// setNodeLive records that n's subscription was confirmed (live) or is
// distrusted; a subscription no longer in the set is ignored. Every
// confirmation empties the cache, like the single server's.
func (c *Cache) setNodeLive(n *nodeSub, live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[n.addr] != n {
		return
	}
	n.confirmed = live
	c.updateLiveLocked(live)
}

// updateLiveLocked sets c.live from the cluster's subscriptions: live only
// while the last look at the masters succeeded and every master's
// subscription is confirmed. The cache is emptied when that changes, or
// when reset. c.mu is held.
func (c *Cache) updateLiveLocked(reset bool) {
	live := c.viewOK && len(c.nodes) > 0
	for _, n := range c.nodes {
		live = live && n.confirmed
	}
	if reset || live != c.live {
		c.live = live
		c.resetLocked()
	}
}

// watchCluster looks at the cluster's masters every Heartbeat until ctx
// ends, and keeps one subscription on each.
func (c *Cache) watchCluster(ctx context.Context, cc *redis.ClusterClient) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(Heartbeat):
		}
		masters, err := c.clusterMasters(ctx, cc)
		if ctx.Err() != nil {
			return
		}
		var gone []*nodeSub
		c.mu.Lock()
		if err != nil {
			// Blind: a master may have been added. Off until the
			// masters are known again.
			if c.viewOK {
				c.viewOK = false
				c.updateLiveLocked(false)
			}
		} else {
			changed := !c.viewOK
			for addr, n := range c.nodes {
				if !masters[addr] {
					delete(c.nodes, addr)
					gone = append(gone, n)
					changed = true
				}
			}
			for addr := range masters {
				if c.nodes[addr] == nil {
					n := newNodeSub(cc.Options(), addr)
					c.nodes[addr] = n
					c.startNode(ctx, n, nil)
					changed = true
				}
			}
			c.viewOK = true
			// A change empties the cache; with a new master it stays
			// off until that master's subscription is confirmed.
			c.updateLiveLocked(changed)
		}
		c.mu.Unlock()
		for _, n := range gone {
			stopNode(n)
		}
	}
}

// clusterMasters returns the addresses of the cluster's masters, as the
// subscribed masters (or, when none answers, the masters go-redis knows)
// describe it in CLUSTER SHARDS, within 2 × Heartbeat.
func (c *Cache) clusterMasters(ctx context.Context, cc *redis.ClusterClient) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*Heartbeat)
	defer cancel()
	tls := cc.Options().TLSConfig != nil
	var (
		mu      sync.Mutex
		answers []shardsAnswer
		errs    []error
		wg      sync.WaitGroup
	)
	ask := func(ctx context.Context, cl *redis.Client) {
		shards, err := cl.ClusterShards(ctx).Result()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cl.Options().Addr, err))
			return
		}
		answers = append(answers, shardsAnswer{origin: cl.Options().Addr, shards: shards})
	}
	c.mu.Lock()
	for _, n := range c.nodes {
		wg.Add(1)
		go func(cl *redis.Client) {
			defer wg.Done()
			ask(ctx, cl)
		}(n.client)
	}
	c.mu.Unlock()
	wg.Wait()
	masters, err := mastersOfShards(answers, tls)
	if err == nil {
		return masters, nil
	}
	// None of the subscribed masters describes the cluster (at start:
	// none yet): ask the masters go-redis knows.
	_ = cc.ForEachMaster(ctx, func(ctx context.Context, cl *redis.Client) error {
		ask(ctx, cl)
		return nil
	})
	if masters, err = mastersOfShards(answers, tls); err == nil {
		return masters, nil
	}
	return nil, fmt.Errorf("list the cluster's masters (CLUSTER SHARDS): %w", errors.Join(append([]error{err}, errs...)...))
}

var errNoSlotMap = errors.New("no node answered with a cluster that has slots")

// A shardsAnswer is the reply of CLUSTER SHARDS from the node at origin.
type shardsAnswer struct {
	origin string
	shards []redis.ClusterShard
}

// mastersOfShards returns the addresses of the masters in the answers of
// CLUSTER SHARDS of several nodes: every master of an answer that assigns
// at least one slot (an answer that assigns none comes from a node outside
// the cluster: removed and reset, or not joined yet), with slots or
// without, except a failed master that nothing depends on (see below). tls picks
// the TLS port. A loopback address from a node reached at another host is
// that host's, as go-redis has it. A master with slots and no address is an
// error: its invalidations could not be received.
func mastersOfShards(answers []shardsAnswer, tls bool) (map[string]bool, error) {
	out := make(map[string]bool)
	used := false
	for _, ans := range answers {
		shards := ans.shards
		assigned := false
		for _, sh := range shards {
			assigned = assigned || len(sh.Slots) > 0
		}
		if !assigned {
			continue
		}
		used = true
		for _, sh := range shards {
			// A failed master is left out when nothing depends on it: it
			// has no slots (Redis 7.0 lists a master replaced by its
			// replica on its own, without slots), or another master of its
			// shard is online (Redis 7.2 and later list it in the shard of
			// the replica that replaced it, with the shard's slots). A
			// failed master that is the only master of a shard with slots
			// stays in: its subscription cannot be confirmed, so the cache
			// stays off until the cluster has a master for those slots.
			online := false
			for _, n := range sh.Nodes {
				online = online || (n.Role == "master" && !failedHealth(n.Health))
			}
			for _, n := range sh.Nodes {
				if n.Role != "master" || (failedHealth(n.Health) && (len(sh.Slots) == 0 || online)) {
					continue
				}
				addr := nodeAddr(n, tls, ans.origin)
				if addr == "" {
					if len(sh.Slots) > 0 {
						return nil, fmt.Errorf("master %s holds slots and has no address", n.ID)
					}
					continue
				}
				out[addr] = true
			}
		}
	}
	if !used {
		return nil, errNoSlotMap
	}
	return out, nil
}

// failedHealth reports whether a CLUSTER SHARDS health field says the node
// failed: Redis sends "fail" (its documentation says "failed").
func failedHealth(h string) bool { return h == "fail" || h == "failed" }

// nodeAddr is the address clients use for n, as described by the node at
// origin: its preferred endpoint (or IP), and its TLS port when tls (or
// when it has no plain port). Like go-redis, a loopback IP described by a
// node that was reached at a host that is not loopback (a cluster that
// announces 127.0.0.1 behind a port mapping) means that host.
func nodeAddr(n redis.Node, tls bool, origin string) string {
	host := n.Endpoint
	if host == "" || host == "?" {
		host = n.IP
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		if oh, _, err := net.SplitHostPort(origin); err == nil && !isLoopbackHost(oh) {
			host = oh
		}
	}
	port := n.Port
	if (tls && n.TLSPort > 0) || port <= 0 {
		port = n.TLSPort
	}
	if host == "" || host == "?" || port <= 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.FormatInt(port, 10))
}

// isLoopbackHost reports whether host is a loopback IP, localhost or a
// Docker host alias, as go-redis decides.
func isLoopbackHost(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	h := strings.ToLower(host)
	return h == "localhost" || strings.HasSuffix(h, ".docker.internal")
}
