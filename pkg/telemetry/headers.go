package telemetry

import (
	"context"
	"strings"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
)

// Header names of W3C trace context, the only propagation headers the
// services read or write.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// traceContext is the one propagator records are read and written with:
// W3C trace context only. W3C baggage is never extracted nor injected: it
// commonly carries user ids and e-mail addresses, and a record the
// pipeline writes (a redacted copy, an audit record) must not carry what
// the customer never consented to. It does not depend on the OTel global
// propagator, so no set-up elsewhere can add baggage back.
var traceContext propagation.TraceContext

// headerCarrier adapts a Kafka record's headers to the OTel propagation
// API. Set writes only the trace context headers, whatever the propagator
// asks for. It is unexported so that the only way to write a propagation
// header into a record is [InjectTraceContext] or [CopyTraceContext].
type headerCarrier struct{ headers *[]kafka.Header }

// Get returns the value of the first header named key (case-insensitive,
// as W3C field names are).
func (c headerCarrier) Get(key string) string {
	for _, h := range *c.headers {
		if strings.EqualFold(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the header named key, or adds it; it ignores every key but
// traceparent and tracestate.
func (c headerCarrier) Set(key, value string) {
	if !IsTraceContextHeader(key) {
		return
	}
	for i, h := range *c.headers {
		if strings.EqualFold(h.Key, key) {
			(*c.headers)[i].Value = []byte(value)
			return
		}
	}
	*c.headers = append(*c.headers, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.headers))
	for i, h := range *c.headers {
		keys[i] = h.Key
	}
	return keys
}

// IsTraceContextHeader reports whether key names a W3C trace context header
// (traceparent or tracestate, in any case).
func IsTraceContextHeader(key string) bool {
	return strings.EqualFold(key, HeaderTraceparent) || strings.EqualFold(key, HeaderTracestate)
}

// HasTraceContext reports whether headers carry a W3C traceparent: a cheap
// check that spares the propagator's work (and allocations) for the many
// records that carry none.
func HasTraceContext(headers []kafka.Header) bool {
	for _, h := range headers {
		if len(h.Key) == len(HeaderTraceparent) && strings.EqualFold(h.Key, HeaderTraceparent) {
			return true
		}
	}
	return false
}

// ExtractTraceContext returns ctx with the W3C trace context carried by
// headers (a malformed one is ignored). Baggage is not extracted.
func ExtractTraceContext(ctx context.Context, headers []kafka.Header) context.Context {
	return traceContext.Extract(ctx, headerCarrier{headers: &headers})
}

// InjectTraceContext writes the span context of ctx into *headers as
// traceparent and tracestate, replacing those headers if present. It writes
// nothing else: whatever baggage ctx holds stays out of the record.
func InjectTraceContext(ctx context.Context, headers *[]kafka.Header) {
	traceContext.Inject(ctx, headerCarrier{headers: headers})
}

// CopyTraceContext writes the trace context of src into *dst, re-encoded
// from its parsed form: a malformed traceparent or tracestate (which could
// carry anything) is not copied, and nothing but trace context is.
func CopyTraceContext(dst *[]kafka.Header, src []kafka.Header) {
	if !HasTraceContext(src) {
		return
	}
	InjectTraceContext(ExtractTraceContext(context.Background(), src), dst)
}
