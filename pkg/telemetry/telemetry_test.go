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
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
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
	InjectTraceContext(ctx, &headers)
	if len(headers) != 2 || headers[1].Key != "traceparent" {
		t.Fatalf("headers after inject: %v", headers)
	}
	got := trace.SpanContextFromContext(ExtractTraceContext(context.Background(), headers))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("extracted %v, want %v", got, span.SpanContext())
	}
	if !HasTraceContext(headers) || HasTraceContext([]kafka.Header{{Key: "other"}}) || !HasTraceContext([]kafka.Header{{Key: "TraceParent"}}) {
		t.Error("HasTraceContext does not see exactly the traceparent header")
	}
	// Inject replaces, never duplicates.
	InjectTraceContext(ctx, &headers)
	if len(headers) != 2 {
		t.Errorf("second inject duplicated the header: %v", headers)
	}
}

// TestTraceContextNeverCarriesBaggage: baggage in the input headers is not
// extracted, baggage in the context is not injected, whatever the global
// propagator, and a copy keeps only well-formed trace context.
func TestTraceContextNeverCarriesBaggage(t *testing.T) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	defer otel.SetTextMapPropagator(propagation.TraceContext{})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := []kafka.Header{{Key: "traceparent", Value: []byte(parent)}, {Key: "tracestate", Value: []byte("v=1")}, {Key: "baggage", Value: []byte("uid=u-4711")}}
	ctx := ExtractTraceContext(context.Background(), in)
	if n := baggage.FromContext(ctx).Len(); n != 0 {
		t.Errorf("ExtractTraceContext extracted %d baggage members", n)
	}
	m, _ := baggage.NewMemberRaw("email", "jane@mail.example")
	b, _ := baggage.New(m)
	ctx = baggage.ContextWithBaggage(ctx, b)
	var out []kafka.Header
	InjectTraceContext(ctx, &out)
	if got := headerMap(out); len(out) != 2 || got["traceparent"] != parent || got["tracestate"] != "v=1" {
		t.Errorf("InjectTraceContext wrote %v, want exactly traceparent and tracestate", out)
	}
	var copied []kafka.Header
	CopyTraceContext(&copied, in)
	if got := headerMap(copied); len(copied) != 2 || got["traceparent"] != parent || got["tracestate"] != "v=1" {
		t.Errorf("CopyTraceContext wrote %v", copied)
	}
	copied = nil
	CopyTraceContext(&copied, []kafka.Header{{Key: "traceparent", Value: []byte("jane@mail.example")}, {Key: "tracestate", Value: []byte("uid=u-4711")}})
	if len(copied) != 0 {
		t.Errorf("CopyTraceContext copied malformed trace context: %v", copied)
	}
	var direct []kafka.Header
	headerCarrier{headers: &direct}.Set("baggage", "uid=u-4711")
	if len(direct) != 0 {
		t.Errorf("the carrier wrote a non-trace-context header: %v", direct)
	}
}

func headerMap(hs []kafka.Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
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
