package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/schemas"
)

const (
	pageViewName = "consentgate.events.PageView"
	purchaseName = "consentgate.events.Purchase"
	emailName    = "consentgate.events.EmailEngagement"
	kitchenName  = "consentgate.test.Kitchen"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

var occurred = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

var (
	catOnce             sync.Once
	catalog, kitchenCat *avrocodec.Catalog
	catErr              error
)

func catalogs(t testing.TB) (*avrocodec.Catalog, *avrocodec.Catalog) {
	t.Helper()
	catOnce.Do(func() {
		catalog, catErr = avrocodec.LoadCatalog(schemas.FS)
		if catErr != nil {
			return
		}
		kitchenCat, catErr = avrocodec.LoadCatalog(os.DirFS("testdata"))
	})
	if catErr != nil {
		t.Fatalf("load catalogs: %v", catErr)
	}
	return catalog, kitchenCat
}

// schemaOf returns a schema of the project catalog, or the test kitchen
// schema, by full name and version (0: latest).
func schemaOf(t testing.TB, name string, version int) *avrocodec.Schema {
	t.Helper()
	cat, kit := catalogs(t)
	if name == kitchenName {
		cat = kit
	}
	if version == 0 {
		s, ok := cat.SchemaByName(name)
		if !ok {
			t.Fatalf("no schema %s", name)
		}
		return s
	}
	s, ok := cat.Version(name, version)
	if !ok {
		t.Fatalf("no schema %s version %d", name, version)
	}
	return s
}

func newRedactor(t testing.TB) *Redactor {
	t.Helper()
	r, err := New(testKey)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	return r
}

// hmacHex is the expected pseudonym of s under testKey.
func hmacHex(s string) string {
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
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
		"user_agent":  map[string]any{"string": "Mozilla/5.0"},
		"ip_address":  map[string]any{"string": "203.0.113.77"},
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
	v["ip_address"] = map[string]any{"string": "2001:db8:abcd:12::1"}
	return v
}

func lineItem(sku string, health any) map[string]any {
	return map[string]any{
		"sku": sku, "name": "product " + sku, "category": "garden/tools",
		"quantity": int32(2), "price_minor": int64(1999), "health_category": health,
	}
}

func purchase() map[string]any {
	return map[string]any{
		"event_id":    "ev-2",
		"subject_id":  "subject-2",
		"occurred_at": occurred,
		"order_id":    "order-9",
		"currency":    "EUR",
		"total_minor": int64(4998),
		"items": []any{
			lineItem("sku-1", nil),
			lineItem("sku-2", map[string]any{"string": "pharmacy"}),
		},
		"shipping_address": map[string]any{"consentgate.events.Address": map[string]any{
			"recipient": "Jane Doe", "street": "Main Street 1", "postal_code": "10115",
			"city": "Berlin", "country": "DE",
		}},
		"payment": map[string]any{
			"method": "CARD", "card_brand": map[string]any{"string": "visa"},
			"card_last4": map[string]any{"string": "4242"},
		},
		"email":      map[string]any{"string": "jane.doe@example.com"},
		"phone":      map[string]any{"string": "+49 151 2345-6789"},
		"ip_address": map[string]any{"string": "203.0.113.77"},
	}
}

func emailEngagement() map[string]any {
	return map[string]any{
		"event_id":    "ev-3",
		"subject_id":  "subject-3",
		"occurred_at": occurred,
		"email":       "jane.doe@example.com",
		"campaign_id": "spring-sale",
		"message_id":  "msg-1",
		"action":      "CLICK",
		"link_url":    map[string]any{"string": "https://shop.example/sale"},
		"user_agent":  nil,
		"ip_address":  map[string]any{"string": "198.51.100.20"},
	}
}

func kitchen() map[string]any {
	return map[string]any{
		"event_id":    "ev-4",
		"subject_id":  "subject-4",
		"occurred_at": occurred,
		"profile": map[string]any{
			"nickname": "janedoe", "age": int32(41), "note": map[string]any{"string": "vip customer"},
			"email": "jane.doe@example.com",
			"inner": map[string]any{"code": "secret-code"},
		},
		"tags":  []any{"gardening", "203.0.113.77"},
		"attrs": map[string]any{"favourite": "roses"},
		"contacts": map[string]any{
			"home": map[string]any{"phone": "+44 20 7946 0958", "label": "landline"},
		},
		"mixed":   []any{nil, map[string]any{"string": "hello world"}},
		"either":  map[string]any{"long": int64(77)},
		"blob":    []byte{1, 2, 3},
		"hash":    []byte{9, 8, 7, 6},
		"score":   float32(0.5),
		"ratio":   0.25,
		"born":    time.Date(1984, 2, 29, 0, 0, 0, 0, time.UTC),
		"seen_at": time.Date(2025, 3, 14, 9, 26, 53, 123456000, time.UTC),
		"clock":   3 * time.Hour,
		"level":   "HIGH",
		"nested": map[string]any{
			"deep": map[string]any{"x": "Jane", "y": map[string]any{"long": int64(5)}},
			"list": []any{int32(1), int32(2)},
			"tag":  "vip",
		},
		"flag": true,
	}
}

// cloneNative deep-copies a goavro native value.
func cloneNative(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneNative(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneNative(e)
		}
		return out
	case []byte:
		return append([]byte{}, x...)
	case *big.Rat:
		return new(big.Rat).Set(x)
	}
	return v
}

// scribble overwrites every string, byte and container of v in place, to
// prove that a result shares no memory with the input.
func scribble(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			scribble(e)
			switch e.(type) {
			case string:
				x[k] = "scribbled"
			}
		}
		x["__scribbled__"] = true
	case []any:
		for i, e := range x {
			scribble(e)
			if _, ok := e.(string); ok {
				x[i] = "scribbled"
			}
		}
	case []byte:
		for i := range x {
			x[i] = 0xEE
		}
	}
}

// apply runs Apply and checks the invariants every result must keep: no
// error, the input untouched and not shared with the output, and the output
// encodes with the schema.
func apply(t *testing.T, r *Redactor, req Request) Result {
	t.Helper()
	before := cloneNative(req.Value)
	res, err := r.Apply(req)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !reflect.DeepEqual(before, any(req.Value)) {
		t.Fatalf("apply modified its input")
	}
	if _, err := req.Schema.Codec().BinaryFromNative(nil, res.Value); err != nil {
		t.Fatalf("result does not encode with %s v%d: %v", req.Schema.FullName, req.Schema.Version, err)
	}
	out := cloneNative(res.Value)
	scribble(res.Value)
	if !reflect.DeepEqual(before, any(req.Value)) {
		t.Fatalf("result shares memory with the input")
	}
	res.Value = out.(map[string]any)
	return res
}

// keepAll is a stream that keeps everything unless a rule says otherwise.
func keepAll(rules ...policy.Treatment) policy.Stream {
	return policy.Stream{
		Topic: "compliant.test", Purposes: []string{"test"},
		Unannotated: policy.UnannotatedKeep, DefaultTreatment: policy.ActionKeep,
		Treatments: rules,
	}
}

func fieldRule(path string, a policy.Action) policy.Treatment {
	return policy.Treatment{Field: path, Action: a}
}

func categoryRule(pattern string, a policy.Action) policy.Treatment {
	return policy.Treatment{Category: pattern, Action: a}
}

func isMismatch(err error) bool {
	var me *MismatchError
	return errors.As(err, &me)
}
