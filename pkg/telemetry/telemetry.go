// Package telemetry sets up OpenTelemetry for a service: traces and metrics
// through the OTel API, exported over OTLP/HTTP when the standard
// OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal variables) is set, and a
// Prometheus /metrics endpoint always, next to /healthz and /readyz.
//
// Nothing here records personal data: callers put no subject ids, event ids
// or field values into span attributes or metric labels, and label values
// come from small fixed sets (topics, streams, purposes, decisions, reasons).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentgate/consentgate/pkg/envflag"
)

// Config configures telemetry.
type Config struct {
	// Addr is where /metrics, /healthz and /readyz are served; empty
	// turns the endpoint off.
	Addr string
	// SampleRatio is the share of traces started here that are sampled;
	// a sampled parent (traceparent header) is always followed.
	SampleRatio float64
}

// Flags declares the settings on s; defAddr is the service's default
// address.
func (c *Config) Flags(s *envflag.Set, prefix string) {
	s.String(&c.Addr, "telemetry-addr", prefix+"TELEMETRY_ADDR", "host:port serving /metrics (Prometheus), /healthz and /readyz; empty turns it off")
	s.Float(&c.SampleRatio, "trace-sample-ratio", "TRACE_SAMPLE_RATIO", "share of new traces sampled (a sampled parent is always followed); OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set")
}

// Validate reports every problem at once.
func (c Config) Validate(prefix string) error {
	var errs []error
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("%sTELEMETRY_ADDR %q is not host:port", prefix, c.Addr))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, errors.New("TRACE_SAMPLE_RATIO must be between 0 and 1"))
	}
	return errors.Join(errs...)
}

// Telemetry holds a service's providers and its HTTP endpoint.
type Telemetry struct {
	service string
	tp      *sdktrace.TracerProvider
	mp      *sdkmetric.MeterProvider
	reg     *prometheus.Registry
	srv     *http.Server
	ln      net.Listener
	log     *slog.Logger

	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

// otlpConfigured reports whether the standard OTEL_EXPORTER_OTLP_*
// variables ask for export of the signal.
func otlpConfigured(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Setup builds the providers, installs them as the OTel globals (with W3C
// trace context propagation, without baggage) and starts the HTTP endpoint.
func Setup(ctx context.Context, service string, c Config, log *slog.Logger) (*Telemetry, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	t := &Telemetry{service: service, reg: prometheus.NewRegistry(), log: log, checks: map[string]func(context.Context) error{}}

	topts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	}
	if otlpConfigured("TRACES") {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
	}
	t.tp = sdktrace.NewTracerProvider(topts...)

	prom, err := otelprom.New(otelprom.WithRegisterer(t.reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if otlpConfigured("METRICS") {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP metric exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	t.mp = sdkmetric.NewMeterProvider(mopts...)

	otel.SetTracerProvider(t.tp)
	otel.SetMeterProvider(t.mp)
	// W3C trace context only, never baggage (see ExtractTraceContext): the
	// records themselves do not use the global, but nothing else in the
	// process should propagate baggage either.
	otel.SetTextMapPropagator(propagation.TraceContext{})

	if c.Addr != "" {
		ln, err := net.Listen("tcp", c.Addr)
		if err != nil {
			return nil, fmt.Errorf("telemetry endpoint %s: %w", c.Addr, err)
		}
		t.ln = ln
		t.srv = &http.Server{Handler: t.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("telemetry endpoint stopped", "error", err.Error())
			}
		}()
	}
	return t, nil
}

// Addr returns the address the endpoint listens on ("" when off).
func (t *Telemetry) Addr() string {
	if t.ln == nil {
		return ""
	}
	return t.ln.Addr().String()
}

// Tracer returns the service's tracer.
func (t *Telemetry) Tracer() trace.Tracer {
	return t.tp.Tracer("github.com/consentgate/consentgate/" + t.service)
}

// Meter returns the service's meter.
func (t *Telemetry) Meter() metric.Meter {
	return t.mp.Meter("github.com/consentgate/consentgate/" + t.service)
}

// AddReadiness registers a readiness check: /readyz answers 503 while any
// check fails. Checks must be quick; they run with a 2s deadline.
func (t *Telemetry) AddReadiness(name string, check func(context.Context) error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.checks[name] = check
}

// Handler serves /metrics, /healthz and /readyz.
func (t *Telemetry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", t.ready)
	return mux
}

func (t *Telemetry) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	t.mu.Lock()
	names := make([]string, 0, len(t.checks))
	for n := range t.checks {
		names = append(names, n)
	}
	checks := make(map[string]func(context.Context) error, len(t.checks))
	for n, c := range t.checks {
		checks[n] = c
	}
	t.mu.Unlock()
	sort.Strings(names)
	status := http.StatusOK
	var body []byte
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			status = http.StatusServiceUnavailable
			body = fmt.Appendf(body, "%s: not ready: %v\n", n, err)
		} else {
			body = fmt.Appendf(body, "%s: ok\n", n)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Shutdown stops the endpoint and flushes the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.srv != nil {
		errs = append(errs, t.srv.Shutdown(ctx))
	}
	errs = append(errs, t.tp.Shutdown(ctx), t.mp.Shutdown(ctx))
	return errors.Join(errs...)
}
