package consent

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// stallProxy forwards TCP to a Redis server until Stall, after which it
// keeps every connection open but forwards nothing: a half-open connection
// (a network partition, a dead NAT entry) that neither side notices.
type stallProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	stalled bool
	conns   []net.Conn
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		for p.isStalled() {
			time.Sleep(10 * time.Millisecond) // hold the bytes, say nothing
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *stallProxy) isStalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled
}

func (p *stallProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
}

var _ = io.EOF

// A half-open invalidation subscription delivers nothing and reports no
// error. Without a heartbeat the cache goes on serving the grant it holds,
// for up to its max age, after the withdrawal was applied: it must stop
// serving from memory within about a second.
func TestCacheDistrustsASilentSubscription(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := startStallProxy(t, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
		MaxRetries: -1, DialTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	prefix := redistest.PrefixFor(t)
	st := NewStore(rdb, prefix)
	writer := NewStore(srv.Client(t), prefix) // consent-sync's own connection, not partitioned
	c := NewCache(st, rdb, 100, time.Minute)
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t0 := time.Now().Add(-time.Hour)
	if _, err := writer.Apply(ctx, cacheChange("g1", "s1", "marketing", ActionGrant, t0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the grant to be read and cached", func() bool {
		got, err := c.Lookup(ctx, []string{"s1"})
		return err == nil && got["s1"] != nil && c.Len() == 1
	})

	proxy.Stall()
	if _, err := writer.Apply(ctx, cacheChange("w1", "s1", "marketing", ActionWithdraw, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	withdrawn := time.Now()
	// From 1.5 s after the withdrawal on, no lookup may return the grant:
	// an error (Redis unreachable: the enforcer pauses) is fine.
	for time.Since(withdrawn) < 3*time.Second {
		got, err := c.Lookup(ctx, []string{"s1"})
		if err == nil && got["s1"] != nil && got["s1"].Purposes["marketing"].Status == StatusGranted && time.Since(withdrawn) > 1500*time.Millisecond {
			t.Fatalf("%v after the withdrawal the cache still serves the grant over a silent subscription", time.Since(withdrawn).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
