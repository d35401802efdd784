package redistest

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Options are the production settings a test server can have: TLS only
// (no plain port), client certificates, and ACL users instead of the open
// default user.
type Options struct {
	// TLS, when set, makes the server listen on a TLS port only (--port 0
	// --tls-port), with the server certificate of these Certs; cluster
	// nodes talk TLS on their bus too (--tls-cluster yes,
	// --tls-replication yes).
	TLS *Certs
	// ClientCerts requires a client certificate signed by the CA
	// (--tls-auth-clients yes); without it, none is asked for
	// (--tls-auth-clients no).
	ClientCerts bool
	// Users are ACL file lines ("user NAME on >password ~keys &channels
	// +commands"), loaded at every start (--aclfile). With Users the
	// default user is off, and the administrator [AdminUser] (every
	// permission, the password [Server.Options] carries) is added, for the
	// test's own setup and for redis-cli.
	Users []string
	// Args are further redis-server arguments.
	Args []string

	// adminPassword is the administrator's password, random per server
	// or cluster.
	adminPassword string
}

// AdminUser is the ACL user with every permission on a server started with
// [Options].Users.
const AdminUser = "redistest-admin"

// acl reports whether the server has ACL users.
func (o Options) acl() bool { return len(o.Users) > 0 }

// apply sets the TLS configuration and the administrator's credentials of
// a client of the server.
func (o Options) apply(tc **tls.Config, user, password *string) {
	if o.TLS != nil {
		*tc = o.tlsConfig()
	}
	if o.acl() {
		*user, *password = AdminUser, o.adminPassword
	}
}

// tlsConfig is the administrator's TLS configuration: the CA and the
// client certificate.
func (o Options) tlsConfig() *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	pool, cert, err := o.TLS.Load()
	if err == nil {
		tc.RootCAs, tc.Certificates = pool, []tls.Certificate{cert}
	}
	return tc
}

// newServer prepares a server (not started) with o's settings; cluster
// adds the cluster arguments.
func newServer(tb testing.TB, o Options, cluster []string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: %s (%v)", installHint, err)
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), opts: o}
	s.args = append(s.args, cluster...)
	if o.TLS != nil {
		auth := "no"
		if o.ClientCerts {
			auth = "yes"
		}
		s.args = append(s.args,
			"--tls-cert-file", o.TLS.ServerCert, "--tls-key-file", o.TLS.ServerKey,
			"--tls-ca-cert-file", o.TLS.CAFile, "--tls-auth-clients", auth)
		if len(cluster) > 0 {
			// The bus and the cluster's own connections use the
			// server certificate as a client certificate too.
			s.args = append(s.args, "--tls-cluster", "yes", "--tls-replication", "yes",
				"--tls-client-cert-file", o.TLS.ClientCert, "--tls-client-key-file", o.TLS.ClientKey)
		}
	}
	if o.acl() {
		if o.adminPassword == "" {
			tb.Fatalf("redistest: internal error: no administrator password")
		}
		lines := append([]string{"user default off", "user " + AdminUser + " on >" + o.adminPassword + " ~* &* +@all"}, o.Users...)
		file := filepath.Join(s.dir, "users.acl")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			tb.Fatalf("redistest: write the ACL file: %v", err)
		}
		s.args = append(s.args, "--aclfile", file)
	}
	s.args = append(s.args, o.Args...)
	return s
}

// withAdmin returns o with a new administrator password when it has ACL
// users.
func (o Options) withAdmin() Options {
	if o.acl() && o.adminPassword == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		o.adminPassword = hex.EncodeToString(b[:])
	}
	return o
}
