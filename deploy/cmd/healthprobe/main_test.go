package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestAddressFollowsTheServiceSetting(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HEALTHPROBE_SERVICE": "enforcer"}, "127.0.0.1:9464"},
		{map[string]string{"HEALTHPROBE_SERVICE": "consent-sync"}, "127.0.0.1:9465"},
		{map[string]string{"HEALTHPROBE_SERVICE": "ledger"}, "127.0.0.1:9467"},
		{map[string]string{"HEALTHPROBE_SERVICE": "enforcer", "ENFORCER_TELEMETRY_ADDR": "0.0.0.0:9500"}, "127.0.0.1:9500"},
		{map[string]string{"HEALTHPROBE_SERVICE": "ledger", "LEDGER_TELEMETRY_ADDR": ":9501"}, "127.0.0.1:9501"},
		{map[string]string{"HEALTHPROBE_SERVICE": "consent-sync", "CONSENT_SYNC_TELEMETRY_ADDR": "[::]:9502"}, "127.0.0.1:9502"},
		{map[string]string{"HEALTHPROBE_SERVICE": "enforcer", "HEALTHPROBE_ADDR": "10.1.2.3:80"}, "10.1.2.3:80"},
	}
	for _, c := range cases {
		got, err := address(env(c.env))
		if err != nil || got != c.want {
			t.Errorf("address(%v) = %q, %v; want %q", c.env, got, err, c.want)
		}
	}
	for _, bad := range []map[string]string{
		{},
		{"HEALTHPROBE_SERVICE": "consentctl"},
		{"HEALTHPROBE_SERVICE": "enforcer", "ENFORCER_TELEMETRY_ADDR": "nonsense"},
		{"HEALTHPROBE_SERVICE": "enforcer", "ENFORCER_TELEMETRY_ADDR": "127.0.0.1:0"},
	} {
		if got, err := address(env(bad)); err == nil {
			t.Errorf("address(%v) = %q, want an error", bad, got)
		}
	}
}

func TestRunExitsByTheAnswer(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/readyz" && ready.Load():
			w.WriteHeader(http.StatusOK)
		default:
			http.Error(w, "redis: not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	e := env(map[string]string{"HEALTHPROBE_SERVICE": "enforcer", "ENFORCER_TELEMETRY_ADDR": srv.Listener.Addr().String()})
	if err := run(nil, e); err != nil {
		t.Fatalf("healthz: %v", err)
	}
	err := run([]string{"/readyz"}, e)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("readyz while not ready: %v, want a 503 error", err)
	}
	ready.Store(true)
	if err := run([]string{"/readyz"}, e); err != nil {
		t.Fatalf("readyz when ready: %v", err)
	}
	if err := run([]string{"/metrics"}, e); err == nil {
		t.Fatal("probing /metrics was accepted")
	}
	// Nothing listening: the probe fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := run(nil, env(map[string]string{"HEALTHPROBE_ADDR": addr})); err == nil {
		t.Fatal("probe of a closed port passed")
	}
}
