// Package redisconn opens the Redis connection every service uses: a single
// server or a Redis Cluster through go-redis' universal client, configured by
// REDIS_ADDR (comma-separated host:port; several addresses mean a cluster) or
// REDIS_URL (redis:// or rediss://, single server).
package redisconn

import (
	"context"
	"errors"
	"fmt"
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
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{Timeout: 500 * time.Millisecond, PingDeadline: 5 * time.Second}
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	var errs []error
	switch {
	case len(c.Addrs) == 0 && c.URL == "":
		errs = append(errs, errors.New("no Redis address: set REDIS_ADDR (host:port, comma-separated for a cluster) or REDIS_URL"))
	case len(c.Addrs) > 0 && c.URL != "":
		errs = append(errs, errors.New("both REDIS_ADDR and REDIS_URL are set: set only one"))
	case c.URL != "":
		if _, err := redis.ParseURL(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_URL is not a redis:// or rediss:// URL: %v", redactURLError(err)))
		}
	}
	for _, a := range c.Addrs {
		if i := strings.LastIndex(a, ":"); i <= 0 || i == len(a)-1 {
			errs = append(errs, fmt.Errorf("redis address %q is not host:port: fix REDIS_ADDR", a))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("redis timeout must be positive: set REDIS_TIMEOUT, e.g. 500ms"))
	}
	if c.PingDeadline <= 0 {
		errs = append(errs, errors.New("redis ping deadline must be positive"))
	}
	return errors.Join(errs...)
}

// redactURLError keeps a possible password in the URL out of messages.
func redactURLError(err error) string {
	s := err.Error()
	if i := strings.Index(s, "@"); i >= 0 {
		return "malformed URL"
	}
	return s
}

// Open connects and pings within PingDeadline. The caller closes the client.
func Open(ctx context.Context, c Config) (redis.UniversalClient, error) {
	var rdb redis.UniversalClient
	if c.URL != "" {
		opt, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("parse REDIS_URL: %s", redactURLError(err))
		}
		opt.ReadTimeout, opt.WriteTimeout, opt.DialTimeout = c.Timeout, c.Timeout, 2*c.Timeout
		if c.PoolSize > 0 {
			opt.PoolSize = c.PoolSize
		}
		rdb = redis.NewClient(opt)
	} else {
		rdb = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:        c.Addrs,
			Password:     c.Password,
			ReadTimeout:  c.Timeout,
			WriteTimeout: c.Timeout,
			DialTimeout:  2 * c.Timeout,
			PoolSize:     c.PoolSize,
		})
	}
	pctx, cancel := context.WithTimeout(ctx, c.PingDeadline)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	return rdb, nil
}

// Flags declares the Redis settings (REDIS_*) on s.
func (c *Config) Flags(s *envflag.Set) {
	s.List(&c.Addrs, "redis-addr", "REDIS_ADDR", "Redis host:port; several, comma-separated, for a Redis Cluster")
	s.Secret(&c.URL, "redis-url", "REDIS_URL", "Redis URL (redis:// or rediss://), instead of REDIS_ADDR")
	s.Secret(&c.Password, "redis-password", "REDIS_PASSWORD", "Redis password for REDIS_ADDR")
	s.Duration(&c.Timeout, "redis-timeout", "REDIS_TIMEOUT", "deadline of one Redis call")
	s.Int(&c.PoolSize, "redis-pool-size", "REDIS_POOL_SIZE", "connections per Redis node; 0 for go-redis' default")
}
