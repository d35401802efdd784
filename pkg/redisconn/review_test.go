package redisconn

// Adversarial review of "Redis for production" (issue 13 part 7). Each test
// states what must hold; a failure is a finding of the review.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// TestReviewKeyContentInAFileSettingIsNotShown: an operator who puts the
// client key itself where its file's path goes (a Kubernetes secret mapped
// to REDIS_TLS_KEY_FILE with valueFrom instead of a mounted file is the
// usual way) must get a message that says so, not one that prints the
// private key. The password file's path is hidden for exactly this reason
// (readPassword); the certificate and key paths are quoted.
func TestReviewKeyContentInAFileSettingIsNotShown(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	keyPEM, err := os.ReadFile(certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	key := string(keyPEM)
	// A line of the key's base64 body: what must never be printed.
	var body string
	for _, l := range strings.Split(key, "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") {
			body = l
			break
		}
	}
	if body == "" {
		t.Fatalf("no body line in the key PEM")
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"key content as REDIS_TLS_KEY_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": key}},
		{"key content as REDIS_TLS_CERT_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": key, "REDIS_TLS_KEY_FILE": certs.ClientKey}},
		{"key content as REDIS_TLS_CA_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CA_FILE": key}},
	} {
		c, err := parseEnv(t, tc.env)
		if err != nil {
			t.Fatalf("%s: parse: %v", tc.name, err)
		}
		verr := c.Validate()
		if verr == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if msg := verr.Error(); strings.Contains(msg, body) || strings.Contains(msg, "PRIVATE KEY") {
			t.Errorf("%s: the error shows the private key:\n%s", tc.name, msg)
		}
	}
}

// TestReviewOneAddressOfAClusterIsACluster: REDIS_ADDR with one address
// (a seed, or a Service in front of the cluster: the usual Kubernetes
// setting) of a Redis Cluster node opens a single-server client (go-redis'
// universal client needs two addresses for a cluster). Open succeeds, and
// then every command on a key of another shard fails with MOVED, and the
// store's single watermark key is not the per-master ones: the service
// starts and then cannot work. It must either refuse with what to set or
// open a cluster client.
func TestReviewOneAddressOfAClusterIsACluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	c := DefaultConfig()
	c.Addrs = cl.Addrs()[:1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdb, err := Open(ctx, c)
	if err != nil {
		if !strings.Contains(err.Error(), "REDIS_ADDR") {
			t.Errorf("refused without naming REDIS_ADDR: %v", err)
		}
		return
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return
	}
	moved := 0
	for i := 0; i < 30; i++ {
		if err := rdb.Set(ctx, "review-key-"+string(rune('a'+i)), "1", time.Minute).Err(); err != nil && strings.HasPrefix(err.Error(), "MOVED") {
			moved++
		}
	}
	t.Errorf("REDIS_ADDR=%s, one master of a 3-master cluster: Open gave a %T, and %d of 30 writes failed with MOVED; want a cluster client or a start-up error naming REDIS_ADDR", c.Addrs[0], rdb, moved)
}

// TestReviewPasswordFileWithBOM: a password file saved by a Windows editor
// starts with a UTF-8 byte order mark. readPassword strips line ends but
// keeps the BOM, so the password sent is not the one in the file and the
// servers refuse it with a message (check the password) that does not point
// at the invisible character. Want: the BOM stripped, or the file refused
// at start-up saying so.
func TestReviewPasswordFileWithBOM(t *testing.T) {
	t.Parallel()
	s := redistest.StartWith(t, redistest.Options{Users: []string{"user app on >app-pw ~* +@all"}})
	c := DefaultConfig()
	c.Addrs, c.Username = []string{s.Addr()}, "app"
	c.PasswordFile = writeFile(t, "pw", "\ufeffapp-pw\r\n")
	if err := c.Validate(); err != nil {
		if !strings.Contains(err.Error(), "REDIS_PASSWORD_FILE") {
			t.Errorf("refused without naming REDIS_PASSWORD_FILE: %v", err)
		}
		return
	}
	if err := open(t, c); err != nil {
		t.Errorf("password file \"\\ufeffapp-pw\\r\\n\" (BOM, CRLF) accepted by Validate, then: %v", err)
	}
}

// TestReviewNegativePoolSizeStopsStartUp: REDIS_POOL_SIZE=-1 passes
// Validate, and go-redis is then given a negative pool size (only the
// REDIS_URL path ignores it). A bad setting must stop start-up with a
// message saying what to set, not a panic or a client without a pool.
func TestReviewNegativePoolSizeStopsStartUp(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c, err := parseEnv(t, map[string]string{"REDIS_ADDR": s.Addr(), "REDIS_POOL_SIZE": "-1"})
	if err != nil {
		if !strings.Contains(err.Error(), "REDIS_POOL_SIZE") {
			t.Errorf("refused without naming REDIS_POOL_SIZE: %v", err)
		}
		return
	}
	if err := c.Validate(); err != nil {
		if !strings.Contains(err.Error(), "REDIS_POOL_SIZE") {
			t.Errorf("refused without naming REDIS_POOL_SIZE: %v", err)
		}
		return
	}
	var oerr error
	func() {
		defer func() {
			if r := recover(); r != nil {
				oerr = errors.New("panic: " + fmt.Sprint(r))
			}
		}()
		oerr = open(t, c)
	}()
	t.Errorf("REDIS_POOL_SIZE=-1 passed Validate; Open then gave: %v", oerr)
}

// TestReviewClusterNodesAllUseTLS: on a TLS cluster every node client go-redis
// makes (for the seeds and for the nodes it learns from CLUSTER SLOTS and
// MOVED) carries the configured TLS settings, with the CA of
// REDIS_TLS_CA_FILE (not the system roots) and the client certificate: no
// node is dialled in clear. (Checked sound in the review.)
func TestReviewClusterNodesAllUseTLS(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	cl := redistest.StartClusterWith(t, 3, redistest.Options{TLS: certs, ClientCerts: true})
	c := tlsConfig(t, certs, "", "", "")
	c.Addrs = cl.Addrs()[:2] // the third is learnt from the cluster
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdb, err := Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cc := rdb.(*redis.ClusterClient)
	for i := 0; i < 50; i++ {
		if err := cc.Set(ctx, fmt.Sprintf("k%d", i), "1", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var seen atomic.Int32 // ForEachShard runs the function concurrently
	err = cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
		o := n.Options()
		if o.TLSConfig == nil || o.TLSConfig.RootCAs == nil || len(o.TLSConfig.Certificates) != 1 || o.TLSConfig.InsecureSkipVerify {
			t.Errorf("node %s: TLS %+v, want the CA pool and the client certificate", o.Addr, o.TLSConfig)
		}
		seen.Add(1)
		return nil
	})
	if err != nil || seen.Load() != 3 {
		t.Fatalf("ForEachShard: %d nodes, %v", seen.Load(), err)
	}
}
