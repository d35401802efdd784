package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestOneAddressOfATLSClusterWithACLUsers: REDIS_ADDR with one node of a
// TLS Redis Cluster, and a user holding only the commands Open needs of the
// services' ACL lines (+ping +cluster|slots +info|server +command; +set for
// the test's writes), gives a cluster client that writes to every shard.
// A user without +info|server is refused at start-up with what to give it.
func TestOneAddressOfATLSClusterWithACLUsers(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	cl := redistest.StartClusterWith(t, 3, redistest.Options{TLS: certs, ClientCerts: true, Users: []string{
		"user app on >app-pw ~* +ping +cluster|slots +info|server +command +set",
		"user noinfo on >app-pw ~* +ping +cluster|slots +command +set",
	}})
	c := tlsConfig(t, certs, cl.Addrs()[0], "app", "app-pw")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdb, err := Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("one address of a cluster node: Open gave a %T, want a *redis.ClusterClient", rdb)
	}
	for i := 0; i < 30; i++ {
		if err := cc.Set(ctx, fmt.Sprintf("one-address-%d", i), "1", time.Minute).Err(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		if n.Options().TLSConfig == nil || len(n.Options().TLSConfig.Certificates) != 1 {
			return fmt.Errorf("node %s without the TLS settings", n.Options().Addr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	c = tlsConfig(t, certs, cl.Addrs()[0], "noinfo", "app-pw")
	rdb, err = Open(ctx, c)
	if err == nil {
		rdb.Close()
		t.Fatal("a user without +info|server: Open accepted it")
	}
	var se *SecurityError
	if !errors.As(err, &se) || se.What != "permission" || !strings.Contains(err.Error(), "info") {
		t.Errorf("a user without +info|server: %v, want a permission error naming the command", err)
	}
}

// TestOneAddressModes: REDIS_URL of a cluster node is refused naming
// REDIS_ADDR (REDIS_URL is for a single server); one address of a single
// server stays a single-server client.
func TestOneAddressModes(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	s := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c := DefaultConfig()
	c.URL = "redis://" + cl.Addrs()[0] + "/0"
	if rdb, err := Open(ctx, c); err == nil {
		rdb.Close()
		t.Errorf("REDIS_URL of a cluster node: Open accepted it")
	} else if !errors.Is(err, errURLCluster) || !strings.Contains(err.Error(), "set REDIS_ADDR") {
		t.Errorf("REDIS_URL of a cluster node: %v, want a refusal saying to set REDIS_ADDR", err)
	}

	for _, c := range []Config{
		{Addrs: []string{s.Addr()}},
		{URL: "redis://" + s.Addr() + "/0"},
	} {
		d := DefaultConfig()
		d.Addrs, d.URL = c.Addrs, c.URL
		rdb, err := Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rdb.(*redis.Client); !ok {
			t.Errorf("one address of a single server: Open gave a %T, want a *redis.Client", rdb)
		}
		rdb.Close()
	}
}
