package consent

import (
	"container/list"
	"context"
	"errors"
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
//   - an entry is used only while the invalidation subscription is live; while
//     it is down (never confirmed, or broken), every lookup goes to Redis and
//     nothing is cached, and when it is (re)established the cache is emptied,
//     since invalidations may have been missed meanwhile;
//   - a state read from Redis is cached only if no invalidation of that
//     subject (and no reset) arrived while it was being read: a race would
//     otherwise cache the state from just before a withdrawal;
//   - an entry is used at most MaxAge after it was read, whatever happened.
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
	epoch   uint64     // invalidations seen
	resets  uint64     // times the cache was emptied
	live    bool       // subscription confirmed and not broken since
	// invalidated holds, per subject, the epoch of its last invalidation,
	// as long as a read that started before it may still be in flight.
	invalidated map[string]uint64
	inflight    map[uint64]int // reads in flight by starting epoch

	// onInvalidate, when set before Start, is called with c.mu held after
	// each invalidation is applied (tests observe deliveries with it).
	onInvalidate func(subject string)

	sub    *redis.PubSub
	cancel context.CancelFunc
	done   chan struct{}

	// Hits, Misses and Invalidations count lookups served from memory,
	// subjects read from Redis, and entries dropped by invalidation.
	Hits, Misses, Invalidations atomic.Int64
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
		invalidated: make(map[string]uint64), inflight: make(map[uint64]int),
	}
}

// Start subscribes to the invalidation channel and waits (within ctx) until
// the subscription is confirmed. The subscription runs until Close.
func (c *Cache) Start(ctx context.Context) error {
	sub := c.rdb.Subscribe(context.Background(), c.store.InvalidationChannel())
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return errors.New("subscribe to consent invalidations: " + err.Error())
	}
	c.setLive(true)
	bg, cancel := context.WithCancel(context.Background())
	c.sub, c.cancel, c.done = sub, cancel, make(chan struct{})
	go c.listen(bg, sub)
	return nil
}

// listen applies invalidations until ctx ends. go-redis reconnects a broken
// subscription by itself on the next Receive; every (re)subscription
// confirmation empties the cache.
func (c *Cache) listen(ctx context.Context, sub *redis.PubSub) {
	defer close(c.done)
	defer sub.Close()
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.setLive(false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				c.setLive(true)
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
	c.resets++
	c.entries = make(map[string]*list.Element)
	c.lru.Init()
}

func (c *Cache) invalidate(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if len(c.inflight) > 0 {
		c.invalidated[subject] = c.epoch
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
	live, epoch, resets := c.live, c.epoch, c.resets
	for _, s := range subjects {
		if el, ok := c.entries[s]; ok && live {
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
	if len(misses) > 0 {
		c.inflight[epoch]++
	}
	c.mu.Unlock()
	if len(misses) == 0 {
		return out, nil
	}
	c.Misses.Add(int64(len(misses)))
	read, err := c.store.Lookup(ctx, misses)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.doneReading(epoch)
	if err != nil {
		// Redis is failing: forget everything, so that nothing is served
		// from memory until reads succeed again.
		c.resets++
		c.entries = make(map[string]*list.Element)
		c.lru.Init()
		return nil, err
	}
	for s, st := range read {
		out[s] = st
	}
	if !c.live || c.resets != resets || c.size <= 0 {
		return out, nil
	}
	for _, s := range misses {
		if c.invalidated[s] > epoch {
			continue // changed while we read it
		}
		if el, ok := c.entries[s]; ok {
			e := el.Value.(*cacheEntry)
			e.state, e.readAt = read[s], now
			c.lru.MoveToFront(el)
			continue
		}
		c.entries[s] = c.lru.PushFront(&cacheEntry{subject: s, state: read[s], readAt: now})
		for c.lru.Len() > c.size {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.entries, old.Value.(*cacheEntry).subject)
		}
	}
	return out, nil
}

// doneReading ends a read that started at epoch, and forgets invalidations
// that no read in flight can still race with. c.mu is held.
func (c *Cache) doneReading(epoch uint64) {
	if c.inflight[epoch]--; c.inflight[epoch] <= 0 {
		delete(c.inflight, epoch)
	}
	if len(c.inflight) == 0 {
		clear(c.invalidated)
		return
	}
	oldest := uint64(1<<64 - 1)
	for e := range c.inflight {
		oldest = min(oldest, e)
	}
	for s, e := range c.invalidated {
		if e <= oldest {
			delete(c.invalidated, s)
		}
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
		c.cancel()
		// Receive does not watch its context; closing the subscription
		// is what unblocks it.
		_ = c.sub.Close()
		<-c.done
	}
}
