package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestEndpointServesMetricsAndReadiness(t *testing.T) {
	tel, err := Setup(context.Background(), "test-svc", Config{Addr: "127.0.0.1:0", SampleRatio: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	c, err := tel.Meter().Int64Counter(MetricDecisions)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3, metric.WithAttributes(attribute.String("stream", "compliant.marketing"), attribute.String("decision", "PASSED")))
	ready := true
	tel.AddReadiness("redis", func(context.Context) error {
		if !ready {
			return errTest
		}
		return nil
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + tel.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `consentgate_decisions_total{decision="PASSED"`) || !strings.Contains(body, `stream="compliant.marketing"`) {
		t.Errorf("/metrics %d:\n%s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d while ready", code)
	}
	ready = false
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "redis: not ready") {
		t.Errorf("/readyz %d %q while not ready", code, body)
	}
}

type testErr string

func (e testErr) Error() string { return string(e) }

const errTest = testErr("down")

func TestHeadersCarryTraceContext(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	_, err := Setup(context.Background(), "test-carrier", Config{SampleRatio: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.Tracer("t").Start(context.Background(), "produce")
	defer span.End()
	headers := []kafka.Header{{Key: "other", Value: []byte("x")}}
	Inject(ctx, &headers)
	if len(headers) != 2 || headers[1].Key != "traceparent" {
		t.Fatalf("headers after inject: %v", headers)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), headers))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("extracted %v, want %v", got, span.SpanContext())
	}
	if !HasTraceContext(headers) || HasTraceContext([]kafka.Header{{Key: "other"}}) || !HasTraceContext([]kafka.Header{{Key: "TraceParent"}}) {
		t.Error("HasTraceContext does not see exactly the traceparent header")
	}
	// Inject replaces, never duplicates.
	Inject(ctx, &headers)
	if len(headers) != 2 {
		t.Errorf("second inject duplicated the header: %v", headers)
	}
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	var b bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&b, nil)))
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	log.InfoContext(ctx, "with span")
	span.End()
	log.Info("without span")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if first["trace_id"] != span.SpanContext().TraceID().String() || first["span_id"] == nil {
		t.Errorf("log line with a span lacks its ids: %v", first)
	}
	if _, ok := second["trace_id"]; ok {
		t.Errorf("log line without a span has a trace id: %v", second)
	}
}
