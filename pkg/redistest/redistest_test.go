package redistest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	s.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping after Stop: want an error, got none")
	}
	s.Stop() // idempotent
	s.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("exists after Restart = %d, %v; want 0 (no persistence)", n, err)
	}
}

func TestTwoServersDifferentAddrs(t *testing.T) {
	t.Parallel()
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	if !strings.HasPrefix(a.Addr(), "127.0.0.1:") {
		t.Fatalf("addr %s not on loopback", a.Addr())
	}
}

func TestPrefixForUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		p := PrefixFor(t)
		if seen[p] || !strings.HasSuffix(p, ":") || strings.ContainsAny(p, "{}") {
			t.Fatalf("bad or repeated prefix %q", p)
		}
		seen[p] = true
	}
}
