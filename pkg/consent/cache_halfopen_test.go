package consent

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// blackhole is a TCP proxy to upstream that can stop forwarding without
// closing anything: a half-open connection, as after a failover when the
// old master's host vanished without a reset.
type blackhole struct {
	ln      net.Listener
	dropped atomic.Bool
}

func startBlackhole(t *testing.T, upstream string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); u.Close() })
			go b.pipe(u, c)
			go b.pipe(c, u)
		}
	}()
	return b
}

func (b *blackhole) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if !b.dropped.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// The invalidation subscription goes silent without breaking (a half-open
// connection: the subscribed server's host is gone, or a network partition
// between the enforcer and it). The cache keeps calling itself live and
// serves a grant withdrawn since for up to its max age (30 s by default),
// where withdrawals must take effect within a second.
func TestCacheNoticesSilentSubscription(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	bh := startBlackhole(t, srv.Addr())
	subRDB := redis.NewClient(&redis.Options{Addr: bh.ln.Addr().String()})
	t.Cleanup(func() { subRDB.Close() })
	st := NewStore(srv.Client(t), redistest.PrefixFor(t))
	if _, err := st.Apply(ctx, cacheChange("g1", "s1", "marketing", ActionGrant, time.Now().Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	c := NewCache(st, subRDB, 100, 30*time.Second)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	if _, err := c.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatal("the grant was not cached (test premise)")
	}
	// A healthy subscription that is merely idle keeps the cache live.
	time.Sleep(4 * Heartbeat)
	if _, err := c.Lookup(ctx, []string{"s1"}); err != nil || c.Hits.Load() != 1 || !c.Live() {
		t.Fatalf("after an idle spell on a healthy subscription: hits %d, live %v, err %v; want a hit", c.Hits.Load(), c.Live(), err)
	}
	bh.dropped.Store(true)
	if _, err := st.Apply(ctx, cacheChange("w1", "s1", "marketing", ActionWithdraw, time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := c.Lookup(ctx, []string{"s1"})
		if err == nil && got["s1"].Purposes["marketing"].Status != StatusGranted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 s after the withdrawal the cache still serves the grant (err %v): its subscription is silent but counts as live", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
