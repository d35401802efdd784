package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A TLS server has no plain port, and with ClientCerts refuses a client
// without a certificate.
func TestStartTLS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	certs := NewCerts(t)
	s := StartWith(t, Options{TLS: certs, ClientCerts: true})
	if err := s.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set over TLS: %v", err)
	}
	plain := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("a plain connection to the TLS port succeeded")
	}
	noCert := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, TLSConfig: certs.CATLS(t)})
	defer noCert.Close()
	if err := noCert.Ping(ctx).Err(); err == nil {
		t.Fatal("a TLS connection without a client certificate succeeded")
	}
	s.Restart()
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
}

// With ACL users the default user is off and each user has its lines.
func TestStartACL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := StartWith(t, Options{Users: []string{"user reader on >readerpw ~r:* +get +ping +hello"}})
	admin := s.Client(t)
	if err := admin.Set(ctx, "r:1", "v", 0).Err(); err != nil {
		t.Fatalf("admin set: %v", err)
	}
	anon := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer anon.Close()
	if err := anon.Get(ctx, "r:1").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("the default user read a key: %v, want NOAUTH", err)
	}
	reader := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "reader", Password: "readerpw", MaxRetries: -1})
	defer reader.Close()
	if v, err := reader.Get(ctx, "r:1").Result(); err != nil || v != "v" {
		t.Fatalf("reader get: %q %v", v, err)
	}
	if err := reader.Set(ctx, "r:1", "w", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("reader set: %v, want NOPERM", err)
	}
}

// A cluster joined by redis-cli over TLS, with ACL users, spreads keys
// over its three masters.
func TestStartClusterTLSACL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := StartClusterWith(t, 3, Options{TLS: NewCerts(t), ClientCerts: true, Users: []string{"user app on >apppw ~* +@all"}})
	rdb := cl.Client(t)
	masters := map[string]bool{}
	for i := range 50 {
		k := "k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("set: %v", err)
		}
		m, err := rdb.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(masters))
	}
	o := cl.Options()
	o.Username, o.Password = "app", "apppw"
	app := redis.NewClusterClient(o)
	defer app.Close()
	if err := app.Get(ctx, "kaa").Err(); err != nil {
		t.Fatalf("app user on the cluster: %v", err)
	}
}
