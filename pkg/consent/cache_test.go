package consent

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
)

func startCache(t *testing.T, size int) (*Cache, *Store, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := NewStore(rdb, redistest.PrefixFor(t))
	c := NewCache(st, rdb, size, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, st, srv
}

func cacheChange(id, subject, purpose string, a Action, at time.Time) Change {
	return Change{ChangeID: id, SubjectID: subject, Purpose: purpose, Action: a, LegalBasis: BasisConsent,
		Source: "test", NoticeVersion: "1", CapturedAt: at}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCacheServesHitsAndDropsInvalidatedSubjects(t *testing.T) {
	t.Parallel()
	r := newCacheRig(t, 100, true)
	c := r.c
	ctx := context.Background()
	// Wait for the grant's invalidation: a lookup in flight when it
	// arrives would (rightly) not keep what it read.
	r.apply(t, "c1", "s1", ActionGrant, 0, true)
	for i := range 3 {
		got, err := c.Lookup(ctx, []string{"s1", "s-unknown"})
		if err != nil {
			t.Fatal(err)
		}
		if v := got["s1"].Check("p", time.Now()); !v.Allowed {
			t.Fatalf("lookup %d: %+v, want granted", i, v)
		}
		if got["s-unknown"] != nil {
			t.Fatalf("unknown subject has a state")
		}
	}
	if h, m := c.Hits.Load(), c.Misses.Load(); h != 4 || m != 2 {
		t.Errorf("hits %d misses %d, want 4 and 2 (unknown subjects are cached too)", h, m)
	}
	r.apply(t, "c2", "s1", ActionWithdraw, time.Second, true)
	if n := c.Invalidations.Load(); n != 1 {
		t.Fatalf("%d entries dropped by the invalidation, want 1", n)
	}
	got, err := c.Lookup(ctx, []string{"s1"})
	if err != nil {
		t.Fatal(err)
	}
	if v := got["s1"].Check("p", time.Now()); v.Allowed || v.Reason != ReasonWithdrawn {
		t.Errorf("after withdrawal the cache says %+v", v)
	}
	// A late change that does not apply publishes nothing. Pub/sub keeps
	// the order, so once a later change's invalidation has arrived, the
	// late one's would have too.
	if out, err := r.writer.Apply(ctx, cacheChange("c0", "s1", "p", ActionGrant, r.t0.Add(-time.Second))); err != nil || out.Applied {
		t.Fatalf("late change: %+v %v, want not applied", out, err)
	}
	r.apply(t, "c3", "s-other", ActionGrant, 0, true)
	if n := r.deliveredTo("s1"); n != 2 {
		t.Errorf("a change that did not apply was published (%d invalidations of the subject, want 2)", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	c, _, _ := startCache(t, 10)
	subjects := make([]string, 25)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("s%d", i)
	}
	if _, err := c.Lookup(context.Background(), subjects); err != nil {
		t.Fatal(err)
	}
	if n := c.Len(); n != 10 {
		t.Errorf("cache holds %d subjects, want its bound 10", n)
	}
}

// TestCacheForgetsEverythingWhenRedisGoesAway: a Redis restart (empty, as a
// cache restart would be) must not leave old grants served from memory.
func TestCacheForgetsEverythingWhenRedisGoesAway(t *testing.T) {
	t.Parallel()
	c, st, srv := startCache(t, 100)
	ctx := context.Background()
	if _, err := st.Apply(ctx, cacheChange("c1", "s1", "marketing", ActionGrant, time.Now().Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	before := c.resets
	c.mu.Unlock()
	srv.Restart()
	// Live() can still be true from before the restart until the listener
	// has seen the broken connection: wait for the reset it causes.
	waitFor(t, "the subscription to come back", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.live && c.resets > before+1
	})
	var got map[string]*State
	waitFor(t, "a lookup to succeed", func() bool {
		var err error
		got, err = c.Lookup(ctx, []string{"s1"})
		return err == nil
	})
	if got["s1"] != nil {
		t.Errorf("after a Redis restart the cache still serves the old grant: %+v", got["s1"])
	}
}

// TestCacheNeverEndsStale hammers lookups while consent flips; once the
// changes stop, every cached state equals what Redis holds.
func TestCacheNeverEndsStale(t *testing.T) {
	t.Parallel()
	r := newCacheRig(t, 1000, true)
	c, st := r.c, r.writer
	ctx := context.Background()
	subjects := []string{"a", "b", "c", "d", "e"}
	t0 := time.Now().Add(-time.Hour)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Lookup(ctx, subjects); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 300 {
		a := ActionGrant
		if i%2 == 1 {
			a = ActionWithdraw
		}
		s := subjects[i%len(subjects)]
		if _, err := st.Apply(ctx, cacheChange(fmt.Sprintf("c%04d", i), s, "p", a, t0.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	// Pub/sub keeps the order: once a later change's invalidation has
	// arrived, all of the above have.
	r.apply(t, "sentinel", "z", ActionGrant, 0, true)
	want, err := st.Lookup(ctx, subjects)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Lookup(ctx, subjects)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for _, s := range subjects {
			if !reflect.DeepEqual(got[s], want[s]) {
				t.Errorf("subject %s: cache %+v, redis %+v", s, got[s].Purposes, want[s].Purposes)
			}
		}
	}
	if c.Hits.Load() == 0 {
		t.Error("no lookup was served from memory: the test proves nothing")
	}
}
