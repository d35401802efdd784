package avrocodec_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/schemaregistry/registrytest"
	"github.com/consentgate/consentgate/schemas"
)

const (
	pageView = "consentgate.events.PageView"
	purchase = "consentgate.events.Purchase"
)

var occurred = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

func loadCatalog(t testing.TB) *avrocodec.Catalog {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	return cat
}

func version(t testing.TB, cat *avrocodec.Catalog, name string, v int) *avrocodec.Schema {
	t.Helper()
	for _, s := range cat.Versions(name) {
		if s.Version == v {
			return s
		}
	}
	t.Fatalf("catalog has no %s version %d", name, v)
	return nil
}

func pageViewV1() map[string]any {
	return map[string]any{
		"event_id":    "ev-1",
		"subject_id":  "subject-1",
		"occurred_at": occurred,
		"session_id":  "sess-1",
		"page_url":    "https://shop.example/garden",
		"page_title":  map[string]any{"string": "Garden"},
		"duration_ms": int32(1200),
		"user_agent":  nil,
		"ip_address":  map[string]any{"string": "192.0.2.1"},
		"geo": map[string]any{"consentgate.events.Geo": map[string]any{
			"country": "DE", "region": nil, "city": map[string]any{"string": "Berlin"},
		}},
	}
}

func pageViewV2() map[string]any {
	v := pageViewV1()
	delete(v, "page_title")
	v["title"] = map[string]any{"string": "Garden"}
	v["referrer"] = map[string]any{"string": "https://search.example/"}
	v["consent_banner_shown"] = true
	v["device_type"] = "MOBILE"
	return v
}

func purchaseV1() map[string]any {
	item := func(sku, category string, health any) any {
		return map[string]any{
			"sku": sku, "name": "product " + sku, "category": category,
			"quantity": int32(1), "price_minor": int64(1999), "health_category": health,
		}
	}
	return map[string]any{
		"event_id":    "ev-2",
		"subject_id":  "subject-2",
		"occurred_at": occurred,
		"order_id":    "order-9",
		"currency":    "EUR",
		"total_minor": int64(3998),
		"items": []any{
			item("sku-1", "garden/tools", nil),
			item("sku-2", "pharmacy/allergy", map[string]any{"string": "pharmacy"}),
		},
		"shipping_address": map[string]any{"consentgate.events.Address": map[string]any{
			"recipient": "A. Person", "street": "Main St 1", "postal_code": "10115", "city": "Berlin", "country": "DE",
		}},
		"payment": map[string]any{
			"method": "CARD", "card_brand": map[string]any{"string": "visa"}, "card_last4": map[string]any{"string": "4242"},
		},
		"email":      map[string]any{"string": "a.person@example.com"},
		"phone":      nil,
		"ip_address": nil,
	}
}

// single frames v as a spec-compliant producer does: C3 01, the schema's
// fingerprint little-endian, then goavro's binary datum, so that the
// codec's framing is checked against an independent encoder. (The
// fingerprint itself is checked against the Avro test vectors in
// canonical_test.go.)
func single(t testing.TB, s *avrocodec.Schema, v map[string]any) []byte {
	t.Helper()
	hdr := []byte{0xC3, 0x01}
	hdr = binary.LittleEndian.AppendUint64(hdr, s.Fingerprint)
	b, err := s.Codec().BinaryFromNative(hdr, v)
	if err != nil {
		t.Fatalf("encode %s: %v", s.FullName, err)
	}
	return b
}

func confluent(t testing.TB, id int, s *avrocodec.Schema, v map[string]any) []byte {
	t.Helper()
	hdr := make([]byte, 5)
	binary.BigEndian.PutUint32(hdr[1:], uint32(id))
	b, err := s.Codec().BinaryFromNative(hdr, v)
	if err != nil {
		t.Fatalf("encode %s: %v", s.FullName, err)
	}
	return b
}

// startRegistry serves an in-memory registry over HTTP and returns it with a
// real client.
func startRegistry(t testing.TB) (*registrytest.Registry, *schemaregistry.Client) {
	t.Helper()
	reg := registrytest.New()
	return reg, schemaregistry.New(registrytest.Start(t, reg), nil)
}
