package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a local Redis Cluster of masters only (no replicas), each a
// redis-server child process started with --cluster-enabled yes and joined
// by `redis-cli --cluster create`, which splits the slots evenly.
type Cluster struct {
	Nodes []*Server
	opts  Options
}

// StartCluster starts a cluster of n masters and waits until every node
// reports cluster_state:ok. Each node keeps its cluster configuration
// (nodes.conf) across [Server.Restart], so a restarted node comes back with
// its slots but without its data: a shard that lost its data.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	return StartClusterWith(tb, n, Options{})
}

// StartClusterWith is StartCluster with TLS (clients, the cluster bus and
// redis-cli all use it) and ACL users (the same ACL file on every node;
// redis-cli joins them as [AdminUser]).
func StartClusterWith(tb testing.TB, n int, o Options) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redistest: redis-cli is not on PATH: install it with redis-server (Debian/Ubuntu: apt-get install redis-tools) (%v)", err)
	}
	o = o.withAdmin()
	c := &Cluster{opts: o}
	for i := 0; i < n; i++ {
		// The bus port is chosen too: port+10000, redis-server's default,
		// may lie above 65535 or be taken.
		bus, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: pick a free port: %v", err)
		}
		s := newServer(tb, o, []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(bus)})
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
	args := append(c.cliArgs(), "--cluster", "create")
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	if o.acl() {
		// Not on the command line (ps shows it): redis-cli reads the
		// password from REDISCLI_AUTH.
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+o.adminPassword)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(tb)
	return c
}

// cliArgs are redis-cli's connection flags for the cluster: TLS with the
// CA and client certificate, the administrator's user name.
func (c *Cluster) cliArgs() []string {
	var args []string
	if t := c.opts.TLS; t != nil {
		args = append(args, "--tls", "--cacert", t.CAFile, "--cert", t.ClientCert, "--key", t.ClientKey)
	}
	if c.opts.acl() {
		args = append(args, "--user", AdminUser)
	}
	return args
}

// WaitOK waits until every node reports cluster_state:ok and knows every
// other node.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, s := range c.Nodes {
			cl := redis.NewClient(s.Options())
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

// Options returns the go-redis options of an administrator's cluster
// client (with TLS and the administrator's credentials when the cluster has
// them).
func (c *Cluster) Options() *redis.ClusterOptions {
	o := &redis.ClusterOptions{Addrs: c.Addrs()}
	c.opts.apply(&o.TLSConfig, &o.Username, &o.Password)
	return o
}

// Client returns a cluster client (the administrator's), closed when tb
// ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(c.Options())
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}
