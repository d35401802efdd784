package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// otlpReceiver is a real HTTP endpoint speaking OTLP/HTTP (protobuf), as a
// collector would: it keeps every span it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracev1.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/v1/traces" {
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err == nil {
			o.mu.Lock()
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					o.spans = append(o.spans, ss.Spans...)
				}
			}
			o.mu.Unlock()
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (o *otlpReceiver) all() []*tracev1.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*tracev1.Span(nil), o.spans...)
}

// TestTelemetryTracesMetricsAndReadiness: a trace started by a producer
// continues through the enforcer into the output record's headers and is
// exported over OTLP; /metrics shows the decision counters with their
// labels; /readyz flips while Redis hangs; and no personal data reaches a
// span attribute or a metric label.
func TestTelemetryTracesMetricsAndReadiness(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	telAddr := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	p := startPipelineWith(t, "testdata/policy.yaml", []string{"compliant.marketing"},
		"ENFORCER_TELEMETRY_ADDR="+telAddr,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL,
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"ENFORCER_CONSENT_CACHE_SIZE=0",
	)
	p.produce(t, p.change(t, consent.Change{ChangeID: "t-1", SubjectID: "tel-alice", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: time.Now().Add(-time.Minute)}))
	p.waitConsent(t, "tel-alice", "marketing", consent.StatusGranted)

	const traceID, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ev := p.email(t, "tel-evt-1", "tel-alice")
	ev.Headers = []kafka.Header{{Key: "traceparent", Value: []byte("00-" + traceID + "-" + producerSpan + "-01")}}
	p.produce(t, ev, p.email(t, "tel-evt-2", "tel-bob"))
	p.audit(t, 2)

	out := p.broker.ReadAll(t, "compliant.marketing", 300*time.Millisecond, 10*time.Second)
	if len(out) != 1 {
		t.Fatalf("compliant.marketing holds %d records, want 1", len(out))
	}
	tp, _ := stream.Header(out[0], "traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != traceID {
		t.Fatalf("output traceparent %q does not continue trace %s", tp, traceID)
	}
	if parts[2] == producerSpan {
		t.Errorf("output traceparent still names the producer's span: the enforcer added no span")
	}

	var recordSpan *tracev1.Span
	deadline := time.Now().Add(20 * time.Second)
	for recordSpan == nil && time.Now().Before(deadline) {
		for _, s := range recv.all() {
			if fmt.Sprintf("%x", s.SpanId) == parts[2] {
				recordSpan = s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if recordSpan == nil {
		t.Fatalf("the enforcer's span %s was not exported over OTLP (%d spans received)", parts[2], len(recv.all()))
	}
	if fmt.Sprintf("%x", recordSpan.TraceId) != traceID || fmt.Sprintf("%x", recordSpan.ParentSpanId) != producerSpan {
		t.Errorf("span %s: trace %x parent %x, want trace %s parent %s", recordSpan.Name, recordSpan.TraceId, recordSpan.ParentSpanId, traceID, producerSpan)
	}

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + telAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`consentgate_decisions_total{decision="PASSED",`,
		`reason="granted",stream="compliant.marketing"`,
		`reason="unknown_subject",stream="compliant.marketing"`,
		`consentgate_records_in_total{`,
		`consentgate_batch_size_bucket{`,
		`consentgate_consent_lookup_duration_seconds_bucket{`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	personal := []string{"tel-alice", "tel-bob", "mail.example", "198.51.100.7"}
	for _, s := range personal {
		if strings.Contains(metrics, s) {
			t.Errorf("/metrics carries personal data %q", s)
		}
	}
	for _, s := range recv.all() {
		text := s.Name
		for _, a := range s.Attributes {
			text += " " + a.Key + "=" + a.Value.String()
		}
		for _, e := range s.Events {
			for _, a := range e.Attributes {
				text += " " + a.Key + "=" + a.Value.String()
			}
		}
		for _, pd := range personal {
			if strings.Contains(text, pd) {
				t.Errorf("span %s carries personal data %q: %s", s.Name, pd, text)
			}
		}
	}

	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d before the outage: %s", code, body)
	}
	p.redis.Pause()
	p.produce(t, p.email(t, "tel-evt-3", "tel-alice"))
	flipped := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !flipped; time.Sleep(200 * time.Millisecond) {
		code, _ := get("/readyz")
		flipped = code == http.StatusServiceUnavailable
	}
	if !flipped {
		t.Error("/readyz stayed ready while Redis was hung")
	}
	p.redis.Resume()
	ready := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(200 * time.Millisecond) {
		code, _ := get("/readyz")
		ready = code == http.StatusOK
	}
	if !ready {
		_, body := get("/readyz")
		t.Errorf("/readyz did not come back after Redis answered again: %s", body)
	}
	if _, body := get("/healthz"); strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz said %q", body)
	}
}
