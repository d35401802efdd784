package consent

import (
	"container/list"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache keeps recently read consent states in the enforcer's memory, bounded
// in size, and drops a subject's entry as soon as the store publishes that
// the subject's consent changed ([Store.InvalidationChannel]).
//
// Freshness rules, all on the side of reading Redis again:
//
//   - an entry is used only while the invalidation subscription is live (on
//     a Redis Cluster: the subscription on every master); while
//     it is down (never confirmed, or broken), every lookup goes to Redis and
//     nothing is cached, and when it is (re)established the cache is emptied,
//     since invalidations may have been missed meanwhile;
//   - a state read from Redis is cached only if no invalidation of that
//     subject, no reset and no failed read happened while it was being read:
//     a race would otherwise cache the state from just before a withdrawal;
//   - an entry is used for less than MaxAge after its read began, whatever
//     happened.
//
// # Why no lookup sees a state older than a received invalidation
//
// The guarantee: a lookup that starts after the cache received the
// invalidation of a change returns a state that includes that change (or a
// newer one). Every read from Redis whose result may be cached is a fill,
// registered (under the cache's mutex) before its request is sent and
// deregistered after the decision to keep its result, in the same critical
// section as that decision. The invariant:
//
//	every invalidation received while a fill is registered is recorded in
//	that fill, and a fill keeps no subject it recorded.
//
// A state served from memory was kept by a fill F. If F began after the
// invalidation was received, F read Redis after the change was written, since
// the store writes and publishes in one atomic script. If F began before, the
// invalidation arrived either while F was registered (F recorded it and kept
// nothing for the subject) or after F had ended (the invalidation removed
// F's entry). Nothing else puts entries in the cache.
//
// Pub/sub delivery is asynchronous, and the argument does not depend on it:
// a change that a fill's read did not see was written, and so published,
// after the read executed in Redis, hence after the fill was registered; its
// invalidation, however late, is therefore received either while the fill is
// registered or after it ended. An invalidation published before the read
// executed but received only after the reply is for a change the read
// already saw: at worst the fresh state is not kept. Between the change and
// the invalidation's arrival a cached entry may still be served: that is the
// propagation delay of pub/sub, normally well under a millisecond.
//
// The argument needs reads from the primary that the store writes to (Start
// refuses a cluster client that reads replicas), and invalidations that are
// received at all: while a subscription is broken without go-redis noticing
// (a half-open connection), changes are missed until the heartbeat finds
// out (within 2 × Heartbeat), and MaxAge bounds how long a state is kept.
//
// # On a Redis Cluster
//
// The store's script PUBLISHes on the master that holds the subject. Redis
// delivers a PUBLISH to the subscribers of that node directly and to those
// of other nodes over the cluster bus, which can lose it without anyone
// noticing (a partition of the bus network, a node that forgot another, a
// node removed by a scale-in that stays up alone): a cache subscribed on one
// node would then stay live and serve a withdrawn grant until MaxAge. So the
// cache subscribes on every master (cache_cluster.go) and is live only while
// every master's subscription is confirmed and answers its heartbeat, and
// the last look at the set of masters succeeded. A change written on a
// master M while the cache is live is then received on M's own
// subscription, bus or not, and "received" in the argument above holds.
//
// What remains is a write on a master the cache does not know yet. The
// watcher reads the set of masters (CLUSTER SHARDS on every subscribed
// master, masters without slots included) every Heartbeat; when the set
// changes the cache is emptied, and with a new master it is not live until
// that master's subscription is confirmed (then emptied again). A new
// master is thus seen within about one Heartbeat of the masters learning
// of it by gossip, before slots are usually moved to it (the README says to
// wait a second); a replica promoted by a failover is seen within about one
// Heartbeat of its promotion. A change written there before that is still
// published over the bus to the other masters' subscriptions, so an
// invalidation is lost only if, in that same interval, the bus fails too;
// even then the entries are dropped when the watcher sees the new master.
// The window is bounded by the watcher's period plus the cluster's gossip,
// not by MaxAge. An answer of CLUSTER SHARDS that assigns no slot at all
// (a node removed and reset, or not joined yet) is not believed; a look
// that gets no believable answer within 2 × Heartbeat turns the cache off.
//
// Subjects with nothing stored are cached too (as unknown), so that a flood
// of events for unknown subjects does not read Redis for each batch.
type Cache struct {
	store  *Store
	rdb    redis.UniversalClient
	size   int
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     *list.List // front: most recently used
	resets  uint64     // times the cache was emptied
	live    bool       // subscription confirmed and not broken since
	fills   map[*fill]struct{}

	// On a Redis Cluster (see cache_cluster.go): one subscription per
	// master, by address; live is viewOK and every one confirmed.
	nodes  map[string]*nodeSub
	viewOK bool // the last look at the cluster's masters succeeded

	// onInvalidate, when set before Start, is called with c.mu held after
	// each invalidation is applied (tests observe deliveries with it).
	onInvalidate func(subject string)

	cancel context.CancelFunc
	done   chan struct{}

	// Hits, Misses and Invalidations count lookups served from memory,
	// subjects read from Redis, and entries dropped by invalidation.
	Hits, Misses, Invalidations atomic.Int64
}

// A fill is a read from Redis in flight whose result the cache may keep (see
// the invariant on [Cache]).
type fill struct {
	resets  uint64              // c.resets when the read began
	changed map[string]struct{} // subjects invalidated since it began
}

type cacheEntry struct {
	subject string
	state   *State // nil: nothing stored
	readAt  time.Time
}

// NewCache returns a cache of at most size subjects in front of store; rdb
// carries the invalidation subscription. Call Start before use and Close
// after.
func NewCache(store *Store, rdb redis.UniversalClient, size int, maxAge time.Duration) *Cache {
	return &Cache{
		store: store, rdb: rdb, size: size, maxAge: maxAge, now: time.Now,
		entries: make(map[string]*list.Element), lru: list.New(),
		fills: make(map[*fill]struct{}),
	}
}

// Start subscribes to the invalidation channel and waits (within ctx) until
// the subscription is confirmed; on a Redis Cluster, on every master (see
// "On a Redis Cluster" above). The subscription runs until Close.
//
// A cluster client that reads replicas (ReadOnly, RouteByLatency or
// RouteRandomly) is refused: a replica may answer with a state older than an
// invalidation already received, which the cache would then keep.
func (c *Cache) Start(ctx context.Context) error {
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		if o := cc.Options(); o.ReadOnly || o.RouteByLatency || o.RouteRandomly {
			return errors.New("consent cache: the Redis client reads replicas (ReadOnly, RouteByLatency or RouteRandomly); the cache needs reads from primaries")
		}
		return c.startCluster(ctx, cc)
	}
	sub := c.rdb.Subscribe(context.Background(), c.store.InvalidationChannel())
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return errors.New("subscribe to consent invalidations: " + err.Error())
	}
	c.setLive(true)
	bg, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.listen(bg, sub, func(ctx context.Context) *redis.PubSub {
			return c.rdb.Subscribe(ctx, c.store.InvalidationChannel())
		}, c.setLive)
	}()
	return nil
}

// Heartbeat is how long the invalidation subscription may stay silent
// before the cache pings it; a ping not answered within another Heartbeat
// means the connection is dead without either side having noticed (a
// network partition, a dropped NAT entry): the cache stops serving from
// memory and subscribes again on a new connection. So a silent subscription
// is distrusted within 2 × Heartbeat.
const Heartbeat = 250 * time.Millisecond

// listen applies the invalidations received on sub until ctx ends, and
// closes sub. Every (re)subscription confirmation calls setLive(true); a
// broken or silent subscription calls setLive(false) and is replaced by
// resubscribe's, on a new connection.
func (c *Cache) listen(ctx context.Context, sub *redis.PubSub, resubscribe func(context.Context) *redis.PubSub, setLive func(bool)) {
	defer func() { _ = sub.Close() }()
	awaitingPong := false
	for {
		msg, err := sub.ReceiveTimeout(ctx, Heartbeat)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !awaitingPong {
				awaitingPong = true
				if sub.Ping(ctx) == nil {
					continue
				}
			}
			// Broken, or silent for two heartbeats: distrust it and
			// subscribe again on a new connection.
			setLive(false)
			awaitingPong = false
			_ = sub.Close()
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			sub = resubscribe(ctx)
			continue
		}
		awaitingPong = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				setLive(true)
			}
		case *redis.Message:
			c.invalidate(m.Payload)
		}
	}
}

func (c *Cache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.resetLocked()
}

// resetLocked empties the cache; no fill in flight keeps anything. c.mu is
// held.
func (c *Cache) resetLocked() {
	c.resets++
	c.entries = make(map[string]*list.Element)
	c.lru.Init()
}

func (c *Cache) invalidate(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for f := range c.fills {
		if f.changed == nil {
			f.changed = make(map[string]struct{})
		}
		f.changed[subject] = struct{}{}
	}
	if el, ok := c.entries[subject]; ok {
		c.lru.Remove(el)
		delete(c.entries, subject)
		c.Invalidations.Add(1)
	}
	if c.onInvalidate != nil {
		c.onInvalidate(subject)
	}
}

// Live reports whether the invalidation subscription is up (entries are
// served from memory only then).
func (c *Cache) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// Lookup returns the states of subjects like [Store.Lookup], from memory
// where it may, and from Redis in one round trip for the rest.
func (c *Cache) Lookup(ctx context.Context, subjects []string) (map[string]*State, error) {
	out := make(map[string]*State, len(subjects))
	now := c.now()
	var misses []string
	c.mu.Lock()
	for _, s := range subjects {
		if el, ok := c.entries[s]; ok && c.live {
			e := el.Value.(*cacheEntry)
			if now.Sub(e.readAt) < c.maxAge {
				c.lru.MoveToFront(el)
				if e.state != nil {
					out[s] = e.state
				}
				c.Hits.Add(1)
				continue
			}
		}
		misses = append(misses, s)
	}
	var f *fill
	if len(misses) > 0 && c.live && c.size > 0 {
		// Register before the request is sent: from now on every
		// invalidation is recorded in f.
		f = &fill{resets: c.resets}
		c.fills[f] = struct{}{}
	}
	c.mu.Unlock()
	if len(misses) == 0 {
		return out, nil
	}
	c.Misses.Add(int64(len(misses)))
	read, err := c.store.Lookup(ctx, misses)
	c.mu.Lock()
	defer c.mu.Unlock()
	// Deregister only once the decision below is made (the deferred call
	// runs before the deferred unlock).
	defer delete(c.fills, f)
	if err != nil {
		// Redis is failing: forget everything, so that nothing is served
		// from memory until reads succeed again.
		c.resetLocked()
		return nil, err
	}
	for s, st := range read {
		out[s] = st
	}
	if f == nil || f.resets != c.resets || !c.live {
		return out, nil
	}
	for _, s := range misses {
		if _, changed := f.changed[s]; changed {
			continue // changed while we read it
		}
		c.put(s, read[s], now)
	}
	return out, nil
}

// put caches the state of subject read by a fill that began at readAt,
// evicting the least recently used entries beyond the size. An entry from
// a read that began later is kept. c.mu is held.
func (c *Cache) put(subject string, st *State, readAt time.Time) {
	if el, ok := c.entries[subject]; ok {
		e := el.Value.(*cacheEntry)
		if !readAt.Before(e.readAt) {
			e.state, e.readAt = st, readAt
		}
		c.lru.MoveToFront(el)
		return
	}
	c.entries[subject] = c.lru.PushFront(&cacheEntry{subject: subject, state: st, readAt: readAt})
	for c.lru.Len() > c.size {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).subject)
	}
}

// Len returns the number of cached subjects.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Close stops the subscription.
func (c *Cache) Close() {
	if c.cancel != nil {
		// The listener receives with a timeout of Heartbeat, then sees
		// the cancelled context and closes its subscription.
		c.cancel()
		<-c.done
		c.cancel = nil
	}
	c.stopNodes() // a cluster's subscriptions, one per master
}
