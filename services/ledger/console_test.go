package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/ledger"
)

func TestValidateConsole(t *testing.T) {
	dir := t.TempDir()
	good, short := filepath.Join(dir, "good"), filepath.Join(dir, "short")
	if err := os.WriteFile(good, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, addr, file string
		want             []string // substrings of the error; none: valid
	}{
		{"off", "", "", nil},
		{"on", "127.0.0.1:8089", good, nil},
		{"no tokens file", "127.0.0.1:8089", "", []string{"LEDGER_CONSOLE_TOKENS_FILE is required"}},
		{"bad address", "8089", good, []string{"LEDGER_CONSOLE_ADDR"}},
		{"missing file", "127.0.0.1:8089", filepath.Join(dir, "nope"), []string{"LEDGER_CONSOLE_TOKENS_FILE"}},
		{"short token", "127.0.0.1:8089", short, []string{"LEDGER_CONSOLE_TOKENS_FILE line 1", "shorter"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Console = ConsoleConfig{Addr: c.addr, TokensFile: c.file}
			err := cfg.validateConsole()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "short\n") {
				t.Error("the error quotes the token")
			}
		})
	}
}

func TestStartConsole(t *testing.T) {
	ctx := context.Background()
	store, err := ledger.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.DiscardHandler)
	cfg := DefaultConfig()
	stop, err := startConsole(ctx, cfg, log, store, nil, nil)
	if err != nil {
		t.Fatalf("without an address: %v", err)
	}
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tokens := filepath.Join(t.TempDir(), "tokens")
	const token = "start-console-token-0123456789"
	if err := os.WriteFile(tokens, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Console = ConsoleConfig{Addr: addr, TokensFile: tokens}
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // no broker: completeness reports the failure, the other pages work
	stop, err = startConsole(ctx, cfg, log, store, nil, func() time.Time { return time.Unix(0, 0) })
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, tok string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/policies", ""); code != http.StatusUnauthorized {
		t.Errorf("/policies without a token = %d", code)
	}
	if code, body := get("/policies", token); code != http.StatusOK || !strings.Contains(body, "Policy versions") {
		t.Errorf("/policies with the token = %d", code)
	}
	if code, body := get("/verification", token); code != http.StatusOK || !strings.Contains(body, "This ledger does not seal") && !strings.Contains(body, "No audit record") {
		t.Errorf("/verification = %d", code)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := stop(sctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the console still listens after shutdown")
	}
}
