// Command healthprobe asks a consentgate service's telemetry endpoint for
// /healthz or /readyz and exits 0 when it answers 200, 1 otherwise. It is
// the container images' HEALTHCHECK and the compose file's healthcheck: the
// images have no shell, curl or wget, so the probe is a static binary of its
// own next to the service.
//
//	healthprobe [/healthz|/readyz]
//
// The address is the one the service listens on: HEALTHPROBE_ADDR when set,
// else the service's own setting (ENFORCER_TELEMETRY_ADDR,
// CONSENT_SYNC_TELEMETRY_ADDR or LEDGER_TELEMETRY_ADDR, by
// HEALTHPROBE_SERVICE, which the image sets), else that service's default
// port. A wildcard host (0.0.0.0, ::, empty) is probed on 127.0.0.1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// services maps a service to its telemetry setting and default address.
var services = map[string]struct{ env, def string }{
	"enforcer":     {"ENFORCER_TELEMETRY_ADDR", "127.0.0.1:9464"},
	"consent-sync": {"CONSENT_SYNC_TELEMETRY_ADDR", "127.0.0.1:9465"},
	"ledger":       {"LEDGER_TELEMETRY_ADDR", "127.0.0.1:9467"},
}

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "healthprobe: %v\n", err)
		os.Exit(1)
	}
}

// address returns the host:port to probe.
func address(getenv func(string) string) (string, error) {
	addr := getenv("HEALTHPROBE_ADDR")
	if addr == "" {
		svc := getenv("HEALTHPROBE_SERVICE")
		s, ok := services[svc]
		if !ok {
			return "", fmt.Errorf("HEALTHPROBE_SERVICE %q has no telemetry endpoint: set HEALTHPROBE_ADDR, or one of enforcer, consent-sync, ledger", svc)
		}
		addr = getenv(s.env)
		if addr == "" {
			addr = s.def
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("telemetry address %q is not host:port", addr)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("telemetry address %q has no fixed port to probe", addr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func run(args []string, getenv func(string) string) error {
	path := "/healthz"
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		return errors.New("usage: healthprobe [/healthz|/readyz]")
	}
	if path != "/healthz" && path != "/readyz" {
		return fmt.Errorf("path %q: only /healthz and /readyz are probed", path)
	}
	addr, err := address(getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
