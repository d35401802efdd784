package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a local Redis Cluster of masters only (no replicas), each a
// redis-server child process with cluster mode on, slots split evenly.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts a cluster of n masters and waits until every node
// reports cluster_state:ok. Each node keeps its cluster configuration
// (nodes.conf) across [Server.Restart], so a restarted node comes back with
// its slots but without its data: a shard that lost its data.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: %s (%v)", installHint, err)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		s := &Server{tb: tb, bin: bin, dir: tb.TempDir(),
			args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}}
		var errs []error
		for attempt := 0; ; attempt++ {
			port, err := freePort()
			if err != nil {
				tb.Fatalf("redistest: pick a free port: %v", err)
			}
			s.port = port
			if err = s.launch(); err == nil {
				break
			}
			errs = append(errs, err)
			if attempt == startAttempts {
				tb.Fatalf("redistest: start cluster node: %v", errors.Join(errs...))
			}
		}
		tb.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	per := 16384 / n
	for i, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
		lo, hi := i*per, (i+1)*per-1
		if i == n-1 {
			hi = 16383
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", s.Addr(), err)
		}
		if i > 0 {
			if err := cl.ClusterMeet(ctx, "127.0.0.1", fmt.Sprint(c.Nodes[0].port)).Err(); err != nil {
				tb.Fatalf("redistest: CLUSTER MEET: %v", err)
			}
		}
		cl.Close()
	}
	c.WaitOK(tb)
	return c
}

// WaitOK waits until every node reports cluster_state:ok and knows every
// other node.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, s := range c.Nodes {
			cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
			info, err := cl.ClusterInfo(context.Background()).Result()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: cluster did not reach cluster_state:ok within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addrs returns the nodes' addresses, for redis.ClusterOptions.Addrs.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// Client returns a cluster client, closed when tb ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}
