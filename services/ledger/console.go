package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/consentgate/consentgate/pkg/bearer"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/services/ledger/internal/console"
)

// ConsoleConfig is the web console's configuration: off unless Addr is
// set.
type ConsoleConfig struct {
	// Addr is where the console listens (e.g. 127.0.0.1:8089); empty: no
	// console.
	Addr string
	// TokensFile holds the console's bearer tokens, one per line.
	TokensFile string
}

func (c *Config) consoleFlags(s *envflag.Set) {
	s.String(&c.Console.Addr, "console-addr", envPrefix+"CONSOLE_ADDR", "address of the read-only compliance web console (e.g. 127.0.0.1:8089); empty: no console")
	s.String(&c.Console.TokensFile, "console-tokens-file", envPrefix+"CONSOLE_TOKENS_FILE", "file of the console's bearer tokens, one per line (at least 16 characters; e.g. openssl rand -hex 32); required with the console")
}

func (c Config) validateConsole() error {
	if c.Console.Addr == "" {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Console.Addr); err != nil {
		errs = append(errs, fmt.Errorf("%sCONSOLE_ADDR %q is not host:port: fix it, or unset it for no console", envPrefix, c.Console.Addr))
	}
	if c.Console.TokensFile == "" {
		errs = append(errs, fmt.Errorf("%sCONSOLE_TOKENS_FILE is required with %sCONSOLE_ADDR: a file of bearer tokens, one per line", envPrefix, envPrefix))
	} else if _, err := bearer.ReadFile(c.Console.TokensFile, envPrefix+"CONSOLE_TOKENS_FILE"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// startConsole serves the console when cfg.Console.Addr is set, and returns
// the function that stops it (a no-op without a console). sealer may be
// nil (the audit is not sealed here); lastIngest may be nil.
func startConsole(ctx context.Context, cfg Config, log *slog.Logger, store *ledger.Store, sealer *Sealer, lastIngest func() time.Time) (func(context.Context) error, error) {
	if cfg.Console.Addr == "" {
		return func(context.Context) error { return nil }, nil
	}
	tokens, err := bearer.ReadFile(cfg.Console.TokensFile, envPrefix+"CONSOLE_TOKENS_FILE")
	if err != nil {
		return nil, err
	}
	ccfg := console.Config{
		Store: store, Auth: console.NewAuth(tokens), Log: log.With("component", "console"), AuditTopic: cfg.AuditTopic,
		Offsets: cfg.Kafka.TopicReader(5 * time.Second), LastIngest: lastIngest,
	}
	if sealer != nil {
		ccfg.Sealer = sealer // a nil *Sealer must not become a non-nil interface
	}
	con, err := console.New(ccfg)
	if err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Console.Addr)
	if err != nil {
		return nil, fmt.Errorf("console: listen on %sCONSOLE_ADDR: %w", envPrefix, err)
	}
	srv := &http.Server{Handler: con.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 90 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("console stopped", "error", err.Error())
		}
	}()
	log.Info("console listening", "addr", ln.Addr().String())
	return srv.Shutdown, nil
}
