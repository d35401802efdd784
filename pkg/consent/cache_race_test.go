package consent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/redis/go-redis/v9"
)

// The tests in this file put a read of the cache and a consent change in a
// chosen order, deterministically: a go-redis hook on the cache's own client
// runs code after a lookup's reply has arrived and before the cache decides
// whether to keep it. No sleeps: every wait is for an event, with a deadline.

// replyHook is a go-redis hook that calls after, when set, with the keys a
// pipeline read (HGETALL), once its reply has been received and before the
// caller sees it.
type replyHook struct {
	mu    sync.Mutex
	after func(keys []string)
}

func (h *replyHook) set(f func(keys []string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.after = f
}

func (h *replyHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *replyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *replyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.mu.Lock()
		f := h.after
		h.mu.Unlock()
		var keys []string
		for _, c := range cmds {
			if c.Name() == "hgetall" {
				keys = append(keys, fmt.Sprint(c.Args()[1]))
			}
		}
		if f != nil && len(keys) > 0 {
			f(keys)
		}
		return err
	}
}

// cacheRig is a cache on a real redis-server, with consent-sync's store on
// a client of its own, an admin client, and a record of every invalidation
// the cache received.
type cacheRig struct {
	c      *Cache
	st     *Store // the cache's store, on the hooked client
	writer *Store // consent-sync's store: another client, same keys
	admin  *redis.Client
	hook   *replyHook
	t0     time.Time

	mu        sync.Mutex
	delivered map[string]int // invalidations the cache received, by subject
}

func newCacheRig(t *testing.T, size int, start bool) *cacheRig {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	r := &cacheRig{hook: &replyHook{}, admin: srv.Client(t), delivered: map[string]int{},
		t0: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	rdb.AddHook(r.hook)
	prefix := redistest.PrefixFor(t)
	r.st = NewStore(rdb, prefix)
	r.writer = NewStore(srv.Client(t), prefix)
	r.c = NewCache(r.st, rdb, size, time.Minute)
	r.c.onInvalidate = func(s string) { // c.mu is held
		r.mu.Lock()
		defer r.mu.Unlock()
		r.delivered[s]++
	}
	if start {
		r.start(t)
	}
	t.Cleanup(r.c.Close)
	return r
}

func (r *cacheRig) start(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.c.Start(ctx); err != nil {
		t.Error(err)
	}
}

func (r *cacheRig) deliveredTo(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered[s]
}

// within waits until cond holds, or says what it waited for in vain. It is
// safe on any goroutine (it does not call t.Fatal).
func within(what string, cond func() bool) error {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for " + what)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// apply applies a change of purpose "p" through consent-sync's store and,
// when wait, waits until the cache has received its invalidation. Safe on
// any goroutine.
func (r *cacheRig) apply(t *testing.T, id, subject string, a Action, at time.Duration, wait bool) {
	before := r.deliveredTo(subject)
	out, err := r.writer.Apply(context.Background(), cacheChange(id, subject, "p", a, r.t0.Add(at)))
	if err != nil || !out.Applied {
		t.Errorf("apply %s: %+v %v", id, out, err)
		return
	}
	if wait {
		if err := within("the cache to receive the invalidation", func() bool { return r.deliveredTo(subject) > before }); err != nil {
			t.Error(err)
		}
	}
}

// status looks subject up through the cache and returns the status of
// purpose "p" ("" for nothing stored).
func (r *cacheRig) status(t *testing.T, subject string) Status {
	t.Helper()
	got, err := r.c.Lookup(context.Background(), []string{subject})
	if err != nil {
		t.Fatal(err)
	}
	if got[subject] == nil {
		return ""
	}
	return got[subject].Purposes["p"].Status
}

func (r *cacheRig) resets() uint64 {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.c.resets
}

// TestCacheKeepsNoStateReadBeforeAWithdrawal: a lookup reads a grant, and
// the withdrawal is applied and its invalidation reaches the cache before the
// lookup is done. The lookup itself may return the grant (it read before the
// withdrawal), but no lookup that starts after the invalidation arrived may:
// the cache must not keep what the first one read. Each case puts other
// reads and subscription events around it.
func TestCacheKeepsNoStateReadBeforeAWithdrawal(t *testing.T) {
	t.Parallel()
	const s1, s2 = "s1", "s2"
	type rig = cacheRig
	cases := []struct {
		name  string
		start bool // start the cache before the first lookup
		// run makes the lookups; the grant of s1 is stored. It returns the
		// lookups to wait for before the final check.
		run func(t *testing.T, r *rig)
	}{
		{"the only read in flight", true, func(t *testing.T, r *rig) {
			var once sync.Once
			r.hook.set(func([]string) { once.Do(func() { r.apply(t, "w", s1, ActionWithdraw, time.Second, true) }) })
			if got := r.status(t, s1); got != StatusGranted {
				t.Errorf("the lookup that read before the withdrawal: %q, want granted", got)
			}
		}},
		{"a newer read in flight", true, func(t *testing.T, r *rig) {
			// While s1's read finishes, a read of s2 that started after
			// the invalidation is still in flight.
			entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var calls atomic.Int32
			r.hook.set(func(keys []string) {
				switch keys[0] {
				case r.st.Key(s1):
					if calls.Add(1) != 1 {
						return
					}
					r.apply(t, "w", s1, ActionWithdraw, time.Second, true)
					go func() {
						defer close(done)
						if _, err := r.c.Lookup(context.Background(), []string{s2}); err != nil {
							t.Error(err)
						}
					}()
					<-entered
				case r.st.Key(s2):
					close(entered)
					<-release
				}
			})
			if got := r.status(t, s1); got != StatusGranted {
				t.Errorf("the lookup that read before the withdrawal: %q, want granted", got)
			}
			if got := r.status(t, s1); got != StatusWithdrawn {
				t.Errorf("with a newer read in flight, a lookup after the invalidation: %q, want withdrawn", got)
			}
			close(release)
			<-done
		}},
		{"an older read of another subject in flight", true, func(t *testing.T, r *rig) {
			entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var once sync.Once
			r.hook.set(func(keys []string) {
				switch keys[0] {
				case r.st.Key(s2):
					close(entered)
					<-release
				case r.st.Key(s1):
					once.Do(func() { r.apply(t, "w", s1, ActionWithdraw, time.Second, true) })
				}
			})
			go func() {
				defer close(done)
				if _, err := r.c.Lookup(context.Background(), []string{s2}); err != nil {
					t.Error(err)
				}
			}()
			<-entered
			if got := r.status(t, s1); got != StatusGranted {
				t.Errorf("the lookup that read before the withdrawal: %q, want granted", got)
			}
			if got := r.status(t, s1); got != StatusWithdrawn {
				t.Errorf("with an older read in flight, a lookup after the invalidation: %q, want withdrawn", got)
			}
			close(release)
			<-done
		}},
		{"an older read of the same subject in flight", true, func(t *testing.T, r *rig) {
			// Two reads of s1 got the grant; the withdrawal arrives while
			// both are in flight; the older one finishes last.
			entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var calls atomic.Int32
			r.hook.set(func(keys []string) {
				if keys[0] != r.st.Key(s1) {
					return
				}
				switch calls.Add(1) {
				case 1:
					close(entered)
					<-release
				case 2:
					r.apply(t, "w", s1, ActionWithdraw, time.Second, true)
				}
			})
			go func() {
				defer close(done)
				got, err := r.c.Lookup(context.Background(), []string{s1})
				if err != nil {
					t.Error(err)
				} else if st := got[s1].Purposes["p"].Status; st != StatusGranted {
					t.Errorf("the older lookup read before the withdrawal: %q, want granted", st)
				}
			}()
			<-entered
			if got := r.status(t, s1); got != StatusGranted {
				t.Errorf("the newer lookup that read before the withdrawal: %q, want granted", got)
			}
			if got := r.status(t, s1); got != StatusWithdrawn {
				t.Errorf("with the older read in flight, a lookup after the invalidation: %q, want withdrawn", got)
			}
			close(release)
			<-done
		}},
		{"the subscription breaks and comes back", true, func(t *testing.T, r *rig) {
			// The withdrawal's invalidation is lost with the subscription.
			var once sync.Once
			r.hook.set(func([]string) {
				once.Do(func() {
					before := r.resets()
					ctx := context.Background()
					if err := r.admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
						t.Error(err)
					}
					r.apply(t, "w", s1, ActionWithdraw, time.Second, false)
					if err := within("the subscription to come back", func() bool { return r.resets() >= before+2 && r.c.Live() }); err != nil {
						t.Error(err)
					}
				})
			})
			if got := r.status(t, s1); got != StatusGranted {
				t.Errorf("the lookup that read before the withdrawal: %q, want granted", got)
			}
		}},
		{"the subscription is confirmed", false, func(t *testing.T, r *rig) {
			// The withdrawal is applied before the cache subscribed, and
			// the subscription is confirmed before the read is done.
			var once sync.Once
			r.hook.set(func([]string) {
				once.Do(func() {
					r.apply(t, "w", s1, ActionWithdraw, time.Second, false)
					r.start(t)
				})
			})
			if got := r.status(t, s1); got != StatusGranted {
				t.Errorf("the lookup that read before the withdrawal: %q, want granted", got)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newCacheRig(t, 100, tc.start)
			r.apply(t, "g", s1, ActionGrant, 0, tc.start)
			tc.run(t, r)
			r.hook.set(nil)
			if got := r.status(t, s1); got != StatusWithdrawn {
				t.Fatalf("a lookup that started after the withdrawal's invalidation was received returned %q, want withdrawn (the cache kept the state read before the withdrawal)", got)
			}
			if t.Failed() {
				return
			}
			// And the withdrawal itself is cached once read after it.
			if got := r.status(t, s1); got != StatusWithdrawn || r.c.Hits.Load() == 0 {
				t.Errorf("the withdrawn state is not served from memory (status %q, %d hits)", got, r.c.Hits.Load())
			}
		})
	}
}

// TestCacheEntriesExpireAfterMaxAge: an entry is used for less than MaxAge
// after its read began, whatever else happens.
func TestCacheEntriesExpireAfterMaxAge(t *testing.T) {
	t.Parallel()
	r := newCacheRig(t, 100, false)
	var clock atomic.Int64 // nanoseconds since base
	base := time.Now()
	r.c.now = func() time.Time { return base.Add(time.Duration(clock.Load())) }
	r.start(t)
	r.apply(t, "g", "s1", ActionGrant, 0, true)
	r.status(t, "s1")
	clock.Store(int64(time.Minute - time.Nanosecond))
	r.status(t, "s1")
	if h, m := r.c.Hits.Load(), r.c.Misses.Load(); h != 1 || m != 1 {
		t.Fatalf("before MaxAge: %d hits %d misses, want 1 and 1", h, m)
	}
	clock.Store(int64(time.Minute))
	r.status(t, "s1")
	if h, m := r.c.Hits.Load(), r.c.Misses.Load(); h != 1 || m != 2 {
		t.Errorf("at MaxAge: %d hits %d misses, want 1 and 2 (the entry is read again)", h, m)
	}
}

// TestCacheEmptiesOnAFailedRead: a read that fails (here a corrupt stored
// value) empties the cache and keeps nothing that reads in flight return.
func TestCacheEmptiesOnAFailedRead(t *testing.T) {
	t.Parallel()
	r := newCacheRig(t, 100, true)
	ctx := context.Background()
	r.apply(t, "g", "s1", ActionGrant, 0, true)
	if err := r.admin.HSet(ctx, r.st.Key("bad"), "p", "not json").Err(); err != nil {
		t.Fatal(err)
	}
	r.status(t, "s1")
	var once sync.Once
	r.hook.set(func(keys []string) {
		if keys[0] == r.st.Key("s2") {
			once.Do(func() {
				if _, err := r.c.Lookup(ctx, []string{"bad"}); !errors.Is(err, ErrCorrupt) {
					t.Errorf("lookup of a corrupt state: %v, want ErrCorrupt", err)
				}
			})
		}
	})
	if _, err := r.c.Lookup(ctx, []string{"s2"}); err != nil {
		t.Fatal(err)
	}
	if n := r.c.Len(); n != 0 {
		t.Errorf("after a failed read the cache holds %d subjects, want 0", n)
	}
}

// TestCacheLookupsSeeEveryReceivedInvalidation is the property behind the
// cache: many lookups run concurrently with consent flipping between grant
// and withdrawal on a few hot subjects, and no lookup that starts after the
// cache received the invalidation of a change returns a state older than
// that change. Every subject's k-th change is captured at t0+k ms, is
// applied after its (k-1)-th and publishes exactly one invalidation, and
// pub/sub keeps the order, so the k-th invalidation the cache receives for a
// subject is that of its k-th change.
func TestCacheLookupsSeeEveryReceivedInvalidation(t *testing.T) {
	t.Parallel()
	const (
		subjects  = 8
		writers   = 2
		changes   = 120 // per subject
		readers   = 4
		batchSize = 3
	)
	r := newCacheRig(t, 1000, true)
	names := make([]string, subjects)
	for i := range names {
		names[i] = fmt.Sprintf("h%d", i)
	}
	version := func(st *State) int {
		if st == nil {
			return 0
		}
		return int(st.Purposes["p"].CapturedAt.Sub(r.t0) / time.Millisecond)
	}
	ctx := context.Background()
	var writing sync.WaitGroup
	for w := range writers {
		writing.Go(func() {
			for k := 1; k <= changes; k++ {
				for i := w; i < subjects; i += writers {
					a := ActionGrant
					if k%2 == 0 {
						a = ActionWithdraw
					}
					r.apply(t, fmt.Sprintf("c%04d", k), names[i], a, time.Duration(k)*time.Millisecond, false)
				}
			}
		})
	}
	stop := make(chan struct{})
	var (
		reading    sync.WaitGroup
		lookups    atomic.Int64
		violations atomic.Int64
	)
	for g := range readers {
		reading.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			batch := make([]string, batchSize)
			need := make([]int, batchSize)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range batch {
					batch[i] = names[rng.IntN(subjects)]
					need[i] = r.deliveredTo(batch[i])
				}
				got, err := r.c.Lookup(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				lookups.Add(1)
				for i, s := range batch {
					if v := version(got[s]); v < need[i] {
						if violations.Add(1) <= 5 {
							t.Errorf("subject %s: a lookup that started after the cache received the invalidation of change %d returned change %d", s, need[i], v)
						}
					}
				}
			}
		})
	}
	writing.Wait()
	if err := within("the last invalidations", func() bool {
		for _, s := range names {
			if r.deliveredTo(s) < changes {
				return false
			}
		}
		return true
	}); err != nil {
		t.Error(err)
	}
	close(stop)
	reading.Wait()
	got, err := r.c.Lookup(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range names {
		if v := version(got[s]); v != changes {
			t.Errorf("subject %s: after the changes stopped the cache says change %d, want %d", s, v, changes)
		}
	}
	if n := violations.Load(); n > 0 {
		t.Errorf("%d of %d lookups returned a state older than an invalidation received before they started", n, lookups.Load())
	}
	if r.c.Hits.Load() == 0 || r.c.Misses.Load() == 0 {
		t.Errorf("%d hits, %d misses: the test needs both to prove anything", r.c.Hits.Load(), r.c.Misses.Load())
	}
	t.Logf("%d lookups, %d hits, %d misses, %d invalidations", lookups.Load(), r.c.Hits.Load(), r.c.Misses.Load(), r.c.Invalidations.Load())
}

// TestCacheRefusesReplicaReads: a replica may answer with a state older than
// an invalidation the cache has already received, so a cluster client that
// reads replicas is refused at Start (before anything is sent).
func TestCacheRefusesReplicaReads(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]*redis.ClusterOptions{
		"ReadOnly":       {ReadOnly: true},
		"RouteByLatency": {RouteByLatency: true},
		"RouteRandomly":  {RouteRandomly: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o.Addrs = []string{"127.0.0.1:1"}
			rdb := redis.NewClusterClient(o)
			defer rdb.Close()
			c := NewCache(NewStore(rdb, "x:"), rdb, 10, time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := c.Start(ctx)
			if err == nil || !strings.Contains(err.Error(), "replicas") {
				t.Errorf("Start with %s: %v, want a refusal naming replica reads", name, err)
			}
			c.Close()
		})
	}
}
