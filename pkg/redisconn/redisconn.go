// Package redisconn opens the Redis connection every service uses: a single
// server or a Redis Cluster through go-redis' universal client, configured by
// REDIS_ADDR (comma-separated host:port; several addresses mean a cluster, and
// so does one address of a cluster node: Open asks the server) or REDIS_URL
// (redis:// or rediss://, single server only).
//
// In production the connection is secured (security.go): TLS with the
// servers' CA, an optional client certificate and the name the servers'
// certificates are checked against (REDIS_TLS, REDIS_TLS_*), and an ACL user
// (REDIS_USERNAME) whose password is read from a file (REDIS_PASSWORD_FILE).
// The files are read at start-up; no message of this package shows a
// password or the content of a file.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/envflag"
)

// Config is the Redis part of a service's configuration.
type Config struct {
	Addrs        []string
	URL          string
	Password     string
	Timeout      time.Duration
	PoolSize     int
	PingDeadline time.Duration

	// TLS turns TLS on; it is on too with a rediss:// URL or when any of
	// the TLS files is set. REDIS_TLS=false with any of them stops
	// start-up instead (see tlsVar).
	TLS bool
	// TLSCAFile holds the PEM certificates of the CAs that signed the
	// servers' certificates; empty: the system's roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the client certificate and its key
	// (PEM), for servers that require one (tls-auth-clients): both or
	// neither.
	TLSCertFile, TLSKeyFile string
	// TLSServerName is the name the servers' certificates must hold;
	// empty: the host of each address (of each cluster node).
	TLSServerName string
	// Username is the Redis ACL user; empty: the default user.
	Username string
	// PasswordFile is the file holding the password (a trailing newline is
	// not part of it), instead of Password.
	PasswordFile string

	// tlsVar is REDIS_TLS (or --redis-tls), unset when not given, so that
	// an explicit false can be told from no setting.
	tlsVar envflag.OptBool
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{Timeout: 500 * time.Millisecond, PingDeadline: 5 * time.Second}
}

// Validate reports every problem at once, each with what to set. No
// message shows any part of REDIS_URL, REDIS_ADDR or REDIS_PASSWORD: a
// malformed value may have its password anywhere.
func (c Config) Validate() error {
	var errs []error
	switch {
	case len(c.Addrs) == 0 && c.URL == "":
		errs = append(errs, errors.New("no Redis address: set REDIS_ADDR (host:port, comma-separated for a cluster) or REDIS_URL"))
	case len(c.Addrs) > 0 && c.URL != "":
		errs = append(errs, errors.New("both REDIS_ADDR and REDIS_URL are set: set only one"))
	case c.URL != "":
		if err := checkURL(c.URL); err != nil {
			errs = append(errs, err)
		}
	}
	for i, a := range c.Addrs {
		if err := checkAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_ADDR entry %d of %d %w", i+1, len(c.Addrs), err))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("redis timeout must be positive: set REDIS_TIMEOUT, e.g. 500ms"))
	}
	if c.PoolSize < 0 {
		errs = append(errs, errPoolSize)
	}
	if c.PingDeadline <= 0 {
		errs = append(errs, errors.New("redis ping deadline must be positive"))
	}
	if _, err := c.security(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// errPoolSize is a negative REDIS_POOL_SIZE, which go-redis would take
// (and panic on) instead of refusing.
var errPoolSize = errors.New("REDIS_POOL_SIZE is negative: set it to the number of connections per Redis node, or to 0 (or unset it) for go-redis' default")

// Messages of REDIS_URL problems. They are fixed texts: none quotes the
// URL, nor the error of a parser that would.
const (
	urlForm   = "the form is redis[s]://[[user]:password@]host[:port][/db][?option=value]"
	urlHidden = " (the value is not shown: it may hold a password)"
	urlEncode = "percent-encode reserved characters of the user name and password (@ %40, : %3A, / %2F, ? %3F, # %23, %% %25, space %20)"
)

var (
	errURLParse    = errors.New("REDIS_URL is not a URL" + urlHidden + ": " + urlForm + "; " + urlEncode)
	errURLScheme   = errors.New("REDIS_URL must start with redis:// or rediss://" + urlHidden)
	errURLHost     = errors.New("REDIS_URL has no host" + urlHidden + ": " + urlForm + "; " + urlEncode)
	errURLFragment = errors.New("REDIS_URL has a '#'" + urlHidden + ": a Redis URL has no fragment; in a password, write '#' as %23")
	errURLAt       = errors.New("REDIS_URL has an '@' after the host" + urlHidden + ": " + urlEncode)
	errURLPort     = errors.New("REDIS_URL port is not a number from 1 to 65535" + urlHidden + ": " + urlForm)
	errURLDB       = errors.New("REDIS_URL path is not a database number such as /0" + urlHidden + ": " + urlForm)
	errURLOption   = errors.New("REDIS_URL has an unknown or malformed ?option" + urlHidden + ": the options are go-redis' ParseURL ones (such as dial_timeout=2s, pool_size=10, db=0); a password goes before the host, not in the query")
	errURLSkip     = errors.New("REDIS_URL has the option skip_verify" + urlHidden + ": the servers' certificates would not be checked; remove it and set REDIS_TLS_CA_FILE to the CA that signed them")
)

// checkURL reports what is wrong with raw as a REDIS_URL, in a message that
// never contains any part of it.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errURLParse
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return errURLScheme
	case u.Opaque != "" || u.Hostname() == "":
		return errURLHost
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errURLFragment
	case strings.Contains(u.EscapedPath(), "@") || strings.Contains(u.RawQuery, "@"):
		return errURLAt
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errURLPort
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return errURLDB
		}
	}
	if _, err := redis.ParseURL(raw); err != nil {
		return errURLOption
	}
	if u.Query().Has("skip_verify") {
		return errURLSkip
	}
	return nil
}

// checkAddr reports what is wrong with a as a REDIS_ADDR entry, without
// quoting it: a URL or user:password@host put there by mistake holds a
// password.
func checkAddr(a string) error {
	if strings.ContainsAny(a, "@/?#") {
		return errors.New("looks like a URL or has user:password@" + urlHidden + ": REDIS_ADDR takes host:port only; set REDIS_URL for a URL, REDIS_PASSWORD for the password")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return errors.New("is not host:port" + urlHidden + ": fix REDIS_ADDR, e.g. redis:6379 or [::1]:6379")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("has no port number from 1 to 65535" + urlHidden + ": fix REDIS_ADDR, e.g. redis:6379")
	}
	return nil
}

// scrubbed returns err with every secret (and its percent-decoded form)
// cut out of its text, for errors from go-redis that may quote an address
// or an option: a last line of defence after checkURL and checkAddr.
func scrubbed(err error, secrets ...string) error {
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		forms := []string{s}
		if d, derr := url.PathUnescape(s); derr == nil {
			forms = append(forms, d)
		}
		for _, f := range forms {
			if f != "" && strings.Contains(msg, f) {
				msg, changed = strings.ReplaceAll(msg, f, "xxxxx"), true
			}
		}
	}
	if !changed {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

// scrubbedError keeps the wrapped error for errors.Is and errors.As, and
// prints only the scrubbed text.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Open connects and pings within PingDeadline. The caller closes the client:
// a *redis.ClusterClient for several addresses or for one address of a
// Redis Cluster node (INFO server says redis_mode:cluster), else a
// *redis.Client; a REDIS_URL of a cluster node is refused.
// Its errors, like Validate's, never show a password; a refused TLS
// handshake or authentication, or a missing permission, says what to check
// ([Explain]).
func Open(ctx context.Context, c Config) (redis.UniversalClient, error) {
	if c.PoolSize < 0 {
		return nil, errPoolSize
	}
	sec, err := c.security()
	if err != nil {
		return nil, err
	}
	var (
		rdb redis.UniversalClient
		// uo: the options of REDIS_ADDR (nil with REDIS_URL).
		uo      *redis.UniversalOptions
		secrets = []string{c.Password, sec.password}
	)
	if c.URL != "" {
		if err := checkURL(c.URL); err != nil {
			return nil, err
		}
		opt, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, errURLOption
		}
		secrets = append(secrets, opt.Password)
		if u, err := url.Parse(c.URL); err == nil && u.User != nil {
			p, _ := u.User.Password()
			secrets = append(secrets, p, u.User.String())
		}
		opt.ReadTimeout, opt.WriteTimeout, opt.DialTimeout = c.Timeout, c.Timeout, 2*c.Timeout
		if c.PoolSize > 0 {
			opt.PoolSize = c.PoolSize
		}
		// security() refused a URL user or password set twice.
		if sec.username != "" {
			opt.Username = sec.username
		}
		if sec.password != "" {
			opt.Password = sec.password
		}
		// A rediss:// URL has TLS on (security() refused a redis:// URL
		// with TLS settings): the CA, client certificate and server name
		// apply to it.
		opt.TLSConfig = sec.tls
		opt.DisableIdentity = true
		rdb = redis.NewClient(opt)
	} else {
		uo = &redis.UniversalOptions{
			Addrs:        c.Addrs,
			Username:     sec.username,
			Password:     sec.password,
			TLSConfig:    sec.tls,
			ReadTimeout:  c.Timeout,
			WriteTimeout: c.Timeout,
			DialTimeout:  2 * c.Timeout,
			PoolSize:     c.PoolSize,
			// No CLIENT SETINFO on connect: a command the ACL users
			// would need (Redis 7.2 on) for nothing the services use.
			DisableIdentity: true,
		}
		rdb = redis.NewUniversalClient(uo)
	}
	pctx, cancel := context.WithTimeout(ctx, c.PingDeadline)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("ping redis: %w", scrubbed(c.explain(err), secrets...))
	}
	single, ok := rdb.(*redis.Client)
	if !ok {
		return rdb, nil // several addresses: a cluster client already
	}
	// One address may be a node (or a Service in front of the nodes) of a
	// Redis Cluster, for which a single-server client would get MOVED for
	// most keys: ask the server (INFO server, which the services' ACL
	// users may run) and open a cluster client if it is one.
	mode, err := serverMode(pctx, single)
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis INFO server (to tell a cluster node from a single server): %w", scrubbed(c.explain(err), secrets...))
	}
	if mode != "cluster" {
		return rdb, nil
	}
	rdb.Close()
	if uo == nil {
		return nil, errURLCluster
	}
	uo.IsClusterMode = true
	rdb = redis.NewUniversalClient(uo)
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("ping redis cluster: %w", scrubbed(c.explain(err), secrets...))
	}
	return rdb, nil
}

// errURLCluster is a REDIS_URL of a Redis Cluster node.
var errURLCluster = errors.New("REDIS_URL points at a node of a Redis Cluster, and REDIS_URL is for a single server" + urlHidden + ": unset REDIS_URL and set REDIS_ADDR to the host:port of one or more nodes (TLS with REDIS_TLS=true and REDIS_TLS_*; the user with REDIS_USERNAME and REDIS_PASSWORD_FILE)")

// serverMode returns the redis_mode of INFO server: "standalone",
// "cluster" or "sentinel" ("" when the server does not say).
func serverMode(ctx context.Context, rdb *redis.Client) (string, error) {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_mode:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// Flags declares the Redis settings (REDIS_*) on s.
func (c *Config) Flags(s *envflag.Set) {
	s.List(&c.Addrs, "redis-addr", "REDIS_ADDR", "Redis host:port; several, comma-separated, for a Redis Cluster")
	s.Secret(&c.URL, "redis-url", "REDIS_URL", "Redis URL (redis:// or rediss://), instead of REDIS_ADDR")
	s.Secret(&c.Password, "redis-password", "REDIS_PASSWORD", "Redis password (of REDIS_USERNAME, or of the default user); prefer REDIS_PASSWORD_FILE")
	s.String(&c.PasswordFile, "redis-password-file", "REDIS_PASSWORD_FILE", "file holding the Redis password (a trailing newline is ignored), instead of REDIS_PASSWORD")
	s.String(&c.Username, "redis-username", "REDIS_USERNAME", "Redis ACL user name; empty: the default user")
	s.OptBool(&c.tlsVar, "redis-tls", "REDIS_TLS", "true (or the flag alone): connect over TLS (1.2 or later); on with rediss:// or any REDIS_TLS_*_FILE; false with those set stops start-up")
	s.String(&c.TLSCAFile, "redis-tls-ca-file", "REDIS_TLS_CA_FILE", "PEM file of the CA certificates that signed the Redis servers' certificates; empty: the system's roots")
	s.String(&c.TLSCertFile, "redis-tls-cert-file", "REDIS_TLS_CERT_FILE", "PEM client certificate, for servers that require one (with REDIS_TLS_KEY_FILE)")
	s.String(&c.TLSKeyFile, "redis-tls-key-file", "REDIS_TLS_KEY_FILE", "PEM key of that client certificate (with REDIS_TLS_CERT_FILE)")
	s.String(&c.TLSServerName, "redis-tls-server-name", "REDIS_TLS_SERVER_NAME", "name the Redis servers' certificates must hold; empty: the host of each address")
	s.Duration(&c.Timeout, "redis-timeout", "REDIS_TIMEOUT", "deadline of one Redis call")
	s.Int(&c.PoolSize, "redis-pool-size", "REDIS_POOL_SIZE", "connections per Redis node; 0 for go-redis' default")
}
