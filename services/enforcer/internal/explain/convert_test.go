package explain

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// allTypes is a schema with every Avro type and logical type goavro gives a
// native form to, beyond what the project's schemas use.
const allTypes = `{
  "type": "record", "name": "All", "namespace": "test.types",
  "fields": [
    {"name": "b", "type": "boolean", "default": false},
    {"name": "i", "type": "int", "default": 0},
    {"name": "l", "type": "long", "default": 0},
    {"name": "f", "type": "float", "default": 0},
    {"name": "d", "type": "double", "default": 0},
    {"name": "raw", "type": "bytes", "default": ""},
    {"name": "fx", "type": {"type": "fixed", "name": "Two", "size": 2}, "default": "ab"},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}, "default": 0},
    {"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}, "default": 0},
    {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}, "default": 0},
    {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}, "default": "\u0000"},
    {"name": "attrs", "type": {"type": "map", "values": "string"}, "default": {}},
    {"name": "multi", "type": ["null", "long", "string"], "default": null},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    {"name": "first", "type": ["string", "null"], "default": "x"}
  ]
}`

func testCatalog(t *testing.T) *avrocodec.Catalog {
	t.Helper()
	cat, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func schemaOf(t *testing.T, cat *avrocodec.Catalog, name string, version int) *avrocodec.Schema {
	t.Helper()
	s, ok := cat.Version(name, version)
	if !ok {
		t.Fatalf("no schema %s v%d", name, version)
	}
	return s
}

func mustObject(t *testing.T, text string) map[string]any {
	t.Helper()
	obj, err := DecodeObject([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestToNative(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	allCat, err := avrocodec.LoadCatalog(fstest.MapFS{"all.avsc": {Data: []byte(allTypes)}})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := allCat.SchemaByName("test.types.All")
	purchase := schemaOf(t, cat, "consentgate.events.Purchase", 1)
	pageV2 := schemaOf(t, cat, "consentgate.events.PageView", 2)
	ts := time.Date(2026, 5, 1, 10, 17, 42, 250e6, time.UTC)
	const purchaseBase = `"event_id":"e","subject_id":"s","order_id":"o","currency":"EUR","total_minor":10,"payment":{"method":"CARD"}`

	cases := []struct {
		name   string
		schema *avrocodec.Schema
		json   string
		// check inspects the native value; nil when an error is expected.
		check   func(t *testing.T, v map[string]any)
		errPath string // the FieldError path wanted
		errHas  string
	}{
		{
			name: "nested record in union, array of records, enum, timestamp string", schema: purchase,
			json: `{` + purchaseBase + `,"occurred_at":"2026-05-01T10:17:42.250Z",
				"items":[{"sku":"a","name":"n","category":"c","quantity":2,"price_minor":5,"health_category":"pharmacy"},
				         {"sku":"b","name":"n","category":"c","quantity":1,"price_minor":7,"health_category":null}],
				"shipping_address":{"recipient":"r","street":"s","postal_code":"p","city":"c","country":"DE"},"email":"x@y.z"}`,
			check: func(t *testing.T, v map[string]any) {
				want := map[string]any{
					"event_id": "e", "subject_id": "s", "occurred_at": ts, "order_id": "o", "currency": "EUR", "total_minor": int64(10),
					"items": []any{
						map[string]any{"sku": "a", "name": "n", "category": "c", "quantity": int32(2), "price_minor": int64(5), "health_category": map[string]any{"string": "pharmacy"}},
						map[string]any{"sku": "b", "name": "n", "category": "c", "quantity": int32(1), "price_minor": int64(7), "health_category": nil},
					},
					"shipping_address": map[string]any{"consentgate.events.Address": map[string]any{"recipient": "r", "street": "s", "postal_code": "p", "city": "c", "country": "DE"}},
					"payment":          map[string]any{"method": "CARD", "card_brand": nil, "card_last4": nil},
					"email":            map[string]any{"string": "x@y.z"}, "phone": nil, "ip_address": nil,
				}
				if !reflect.DeepEqual(v, want) {
					t.Errorf("got  %#v\nwant %#v", v, want)
				}
			},
		},
		{
			name: "timestamp as epoch millis, null union record, enum default", schema: pageV2,
			json: `{"event_id":"e","subject_id":"s","occurred_at":1777630662250,"session_id":"x","page_url":"u","geo":null}`,
			check: func(t *testing.T, v map[string]any) {
				if v["occurred_at"] != ts {
					t.Errorf("occurred_at %v, want %v", v["occurred_at"], ts)
				}
				if v["geo"] != nil || v["device_type"] != "UNKNOWN" || v["duration_ms"] != int32(0) || v["consent_banner_shown"] != false {
					t.Errorf("defaults: %#v", v)
				}
			},
		},
		{
			name: "union record with a missing optional field", schema: pageV2,
			json: `{"event_id":"e","subject_id":"s","occurred_at":0,"session_id":"x","page_url":"u","geo":{"country":"DE"}}`,
			check: func(t *testing.T, v map[string]any) {
				want := map[string]any{"consentgate.events.Geo": map[string]any{"country": "DE", "region": nil, "city": nil}}
				if !reflect.DeepEqual(v["geo"], want) {
					t.Errorf("geo %#v, want %#v", v["geo"], want)
				}
			},
		},
		{
			name: "avro json union wrapping is accepted too", schema: pageV2,
			json: `{"event_id":"e","subject_id":"s","occurred_at":0,"session_id":"x","page_url":"u","title":{"string":"T"}}`,
			check: func(t *testing.T, v map[string]any) {
				if !reflect.DeepEqual(v["title"], map[string]any{"string": "T"}) {
					t.Errorf("title %#v", v["title"])
				}
			},
		},
		{
			name: "every other type", schema: all,
			json: `{"b":true,"i":-5,"l":9007199254740993,"f":1.5,"d":2.25,"raw":"hi","fx":"zz","day":"2026-05-01","tod":61000,
				"us":"2026-05-01T10:17:42.000001Z","dec":"12.34","attrs":{"k":"v"},"multi":"text","tags":["a","b"],"first":null}`,
			check: func(t *testing.T, v map[string]any) {
				want := map[string]any{
					"b": true, "i": int32(-5), "l": int64(9007199254740993), "f": float32(1.5), "d": 2.25,
					"raw": []byte("hi"), "fx": []byte("zz"), "day": time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
					"tod": 61 * time.Second, "us": time.Date(2026, 5, 1, 10, 17, 42, 1000, time.UTC),
					"dec": big.NewRat(1234, 100), "attrs": map[string]any{"k": "v"}, "multi": map[string]any{"string": "text"},
					"tags": []any{"a", "b"}, "first": nil,
				}
				if !reflect.DeepEqual(v, want) {
					t.Errorf("got  %#v\nwant %#v", v, want)
				}
			},
		},
		{
			name: "defaults of every type, first union branch not null", schema: all, json: `{"multi":7}`,
			check: func(t *testing.T, v map[string]any) {
				if !reflect.DeepEqual(v["multi"], map[string]any{"long": int64(7)}) || !reflect.DeepEqual(v["first"], map[string]any{"string": "x"}) {
					t.Errorf("multi %#v, first %#v", v["multi"], v["first"])
				}
				if !reflect.DeepEqual(v["tags"], []any{}) || !reflect.DeepEqual(v["fx"], []byte("ab")) {
					t.Errorf("tags %#v, fx %#v", v["tags"], v["fx"])
				}
			},
		},
		{name: "wrong type deep in an array", schema: purchase,
			json:    `{` + purchaseBase + `,"occurred_at":0,"items":[{"sku":"a","name":"n","category":"c","quantity":1,"price_minor":5},{"sku":"b","name":"n","category":"c","quantity":"two","price_minor":7}]}`,
			errPath: "items[1].quantity", errHas: "want int, got a string"},
		{name: "missing required field in a union record", schema: purchase,
			json:    `{` + purchaseBase + `,"occurred_at":0,"items":[],"shipping_address":{"recipient":"r","street":"s","postal_code":"p","city":"c"}}`,
			errPath: "shipping_address.country", errHas: "missing"},
		{name: "unknown field", schema: purchase,
			json:    `{` + purchaseBase + `,"occurred_at":0,"items":[],"coupon":"x"}`,
			errPath: "coupon", errHas: "no such field"},
		{name: "bad enum symbol", schema: purchase,
			json:    `{"event_id":"e","subject_id":"s","order_id":"o","currency":"EUR","total_minor":10,"occurred_at":0,"items":[],"payment":{"method":"CASH"}}`,
			errPath: "payment.method", errHas: "not a symbol of enum consentgate.events.PaymentMethod"},
		{name: "bad timestamp", schema: purchase,
			json:    `{` + purchaseBase + `,"occurred_at":"yesterday","items":[]}`,
			errPath: "occurred_at", errHas: "RFC 3339"},
		{name: "fractional long", schema: purchase,
			json:    `{"event_id":"e","subject_id":"s","order_id":"o","currency":"EUR","total_minor":1.5,"occurred_at":0,"items":[],"payment":{"method":"CARD"}}`,
			errPath: "total_minor", errHas: "want an integer"},
		{name: "null for a non-nullable field", schema: purchase,
			json:    `{"event_id":"e","subject_id":null,"order_id":"o","currency":"EUR","total_minor":10,"occurred_at":0,"items":[],"payment":{"method":"CARD"}}`,
			errPath: "subject_id", errHas: "want string, got null"},
		{name: "int out of range", schema: all, json: `{"i":3000000000}`, errPath: "i", errHas: "range of int"},
		{name: "no union branch fits", schema: all, json: `{"multi":true}`, errPath: "multi", errHas: "want one of null, long, string, got a boolean"},
		{name: "wrong size of fixed", schema: all, json: `{"fx":"abc"}`, errPath: "fx", errHas: "want 2 bytes"},
		{name: "map value", schema: all, json: `{"attrs":{"k":1}}`, errPath: "attrs{}", errHas: "want string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obj, err := DecodeObject([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			v, err := ToNative(tc.schema, obj)
			if tc.check == nil {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v, want a *FieldError", err)
				}
				if fe.Path != tc.errPath || !strings.Contains(fe.Problem, tc.errHas) {
					t.Errorf("error %q, want path %q and %q", err, tc.errPath, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v)
			// The native value is what the schema's codec encodes, and reads
			// back to the same friendly JSON.
			if _, err := tc.schema.EncodeSingle(v); err != nil {
				t.Fatalf("encode: %v", err)
			}
			back, err := FromNative(tc.schema, v)
			if err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			v2, err := ToNative(tc.schema, mustObject(t, string(again)))
			if err != nil {
				t.Fatalf("converting FromNative's output again: %v\n%s", err, again)
			}
			if !reflect.DeepEqual(v, v2) {
				t.Errorf("round trip changed the value:\n%#v\n%#v", v, v2)
			}
		})
	}
}

func TestErrorsNeverQuoteValues(t *testing.T) {
	t.Parallel()
	s := schemaOf(t, testCatalog(t), "consentgate.events.EmailEngagement", 1)
	for _, j := range []string{
		`{"event_id":"e","subject_id":"secret-subject","occurred_at":"secret-time","email":"x","campaign_id":"c","message_id":"m","action":"OPEN"}`,
		`{"event_id":"e","subject_id":"s","occurred_at":0,"email":"x","campaign_id":"c","message_id":"m","action":"secret-action"}`,
		`{"event_id":"e","subject_id":"s","occurred_at":0,"email":42,"campaign_id":"c","message_id":"m","action":"OPEN"}`,
	} {
		_, err := ToNative(s, mustObject(t, j))
		if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "42") {
			t.Errorf("error %v: want one that quotes no value", err)
		}
	}
}

func TestResolveSchemaAmbiguous(t *testing.T) {
	t.Parallel()
	twin := func(name string) []byte {
		return []byte(`{"type":"record","name":"` + name + `","namespace":"test","fields":[{"name":"event_id","type":"string"}]}`)
	}
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"a.avsc": {Data: twin("A")}, "b.avsc": {Data: twin("B")}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ResolveSchema(cat, mustObject(t, `{"event_id":"e"}`), "")
	if !errors.Is(err, ErrAmbiguousSchema) || !strings.Contains(err.Error(), "test.A, test.B; name one with --schema") {
		t.Errorf("error %v, want ErrAmbiguousSchema listing test.A, test.B", err)
	}
	s, _, err := ResolveSchema(cat, mustObject(t, `{"event_id":"e"}`), "test.B")
	if err != nil || s.FullName != "test.B" {
		t.Errorf("named: %v, %v", s, err)
	}
}

func TestResolveSchema(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	cases := []struct {
		name, json, schema string
		wantName           string
		wantVersion        int
		wantErr            error
		errHas             string
	}{
		{name: "guessed, latest version", json: `{"event_id":"e","subject_id":"s","occurred_at":0,"session_id":"x","page_url":"u","title":"T"}`,
			wantName: "consentgate.events.PageView", wantVersion: 2},
		{name: "guessed, older version", json: `{"event_id":"e","subject_id":"s","occurred_at":0,"session_id":"x","page_url":"u","page_title":"T"}`,
			wantName: "consentgate.events.PageView", wantVersion: 1},
		{name: "named", json: `{"event_id":"e","subject_id":"s","occurred_at":0,"email":"x","campaign_id":"c","message_id":"m","action":"OPEN"}`,
			schema: "consentgate.events.EmailEngagement", wantName: "consentgate.events.EmailEngagement", wantVersion: 1},
		{name: "none fits, every schema says why", json: `{"event_id":"e"}`,
			wantErr: ErrNoSchema, errHas: "consentgate.events.Purchase: subject_id: missing"},
		{name: "unknown name", json: `{}`, schema: "consentgate.events.Refund", wantErr: ErrNoSchema, errHas: "known: "},
		{name: "named but does not fit", json: `{"event_id":"e"}`, schema: "consentgate.events.Purchase", errHas: "does not fit consentgate.events.Purchase: subject_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _, err := ResolveSchema(cat, mustObject(t, tc.json), tc.schema)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("error %v, want %v containing %q", err, tc.wantErr, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.FullName != tc.wantName || s.Version != tc.wantVersion {
				t.Errorf("schema %s v%d, want %s v%d", s.FullName, s.Version, tc.wantName, tc.wantVersion)
			}
		})
	}
}
