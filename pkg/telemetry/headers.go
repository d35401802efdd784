package telemetry

import (
	"context"
	"strings"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
)

// HeaderCarrier adapts a Kafka record's headers to the OTel propagation
// API, so W3C trace context (traceparent, tracestate) travels with records
// from producer to enforcer to purpose stream.
type HeaderCarrier struct{ Headers *[]kafka.Header }

// Get returns the value of the first header named key (case-insensitive,
// as W3C field names are).
func (c HeaderCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if strings.EqualFold(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the header named key, or adds it.
func (c HeaderCarrier) Set(key, value string) {
	for i, h := range *c.Headers {
		if strings.EqualFold(h.Key, key) {
			(*c.Headers)[i].Value = []byte(value)
			return
		}
	}
	*c.Headers = append(*c.Headers, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, len(*c.Headers))
	for i, h := range *c.Headers {
		keys[i] = h.Key
	}
	return keys
}

// HasTraceContext reports whether headers carry a W3C traceparent: a cheap
// check that spares the propagator's work (and allocations) for the many
// records that carry none.
func HasTraceContext(headers []kafka.Header) bool {
	for _, h := range headers {
		if len(h.Key) == len("traceparent") && strings.EqualFold(h.Key, "traceparent") {
			return true
		}
	}
	return false
}

// Extract returns ctx with the trace context carried by headers.
func Extract(ctx context.Context, headers []kafka.Header) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier{Headers: &headers})
}

// Inject writes the trace context of ctx into *headers.
func Inject(ctx context.Context, headers *[]kafka.Header) {
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier{Headers: headers})
}
