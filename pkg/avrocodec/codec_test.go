package avrocodec_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
)

func TestDecodeFraming(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	v1, v2 := version(t, cat, pageView, 1), version(t, cat, pageView, 2)
	reg, client := startRegistry(t)
	idV1 := reg.Add("customer.events-value", v1.Text)
	idV2 := reg.Add("customer.events-value", v2.Text)
	codec := avrocodec.New(cat, client)

	goodSingle := single(t, v2, pageViewV2())
	goodConfluent := confluent(t, idV2, v2, pageViewV2())
	garbage := append(append([]byte(nil), goodSingle[:10]...), 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
	unknownFP := append([]byte(nil), goodSingle...)
	unknownFP[2] ^= 0xff

	tests := []struct {
		name    string
		data    []byte
		codec   *avrocodec.Codec
		reason  avrocodec.Reason // "" = success
		framing avrocodec.Framing
	}{
		{name: "empty", data: nil, reason: avrocodec.ReasonEmpty},
		{name: "one zero byte", data: []byte{0x00}, reason: avrocodec.ReasonTruncated},
		{name: "one C3 byte", data: []byte{0xC3}, reason: avrocodec.ReasonTruncated},
		{name: "json text", data: []byte(`{"event_id":"x"}`), reason: avrocodec.ReasonBadMagic},
		{name: "bad second magic byte", data: []byte{0xC3, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 0}, reason: avrocodec.ReasonBadMagic},
		{name: "truncated confluent header", data: []byte{0x00, 0x00, 0x00, 0x01}, reason: avrocodec.ReasonTruncated},
		{name: "truncated single-object header", data: goodSingle[:9], reason: avrocodec.ReasonTruncated},
		{name: "unknown fingerprint", data: unknownFP, reason: avrocodec.ReasonUnknownFingerprint},
		{name: "unknown schema id", data: []byte{0x00, 0x00, 0x01, 0x00, 0x00, 0x02}, reason: avrocodec.ReasonUnknownSchemaID},
		{name: "no registry configured", data: goodConfluent, codec: avrocodec.New(cat, nil), reason: avrocodec.ReasonUnknownSchemaID},
		{name: "garbage payload", data: garbage, reason: avrocodec.ReasonBadPayload},
		{name: "header only", data: goodSingle[:10], reason: avrocodec.ReasonBadPayload},
		{name: "payload cut short", data: goodConfluent[:len(goodConfluent)-3], reason: avrocodec.ReasonBadPayload},
		{name: "trailing bytes single-object", data: append(append([]byte(nil), goodSingle...), 0x00), reason: avrocodec.ReasonTrailingBytes},
		{name: "trailing bytes confluent", data: append(append([]byte(nil), goodConfluent...), 0x02, 0x03), reason: avrocodec.ReasonTrailingBytes},
		{name: "good single-object v2", data: goodSingle, framing: avrocodec.FramingSingleObject},
		{name: "good single-object v1", data: single(t, v1, pageViewV1()), framing: avrocodec.FramingSingleObject},
		{name: "good confluent v2", data: goodConfluent, framing: avrocodec.FramingConfluent},
		{name: "good confluent v1", data: confluent(t, idV1, v1, pageViewV1()), framing: avrocodec.FramingConfluent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := codec
			if tc.codec != nil {
				c = tc.codec
			}
			rec, err := c.Decode(context.Background(), tc.data)
			if tc.reason != "" {
				var de *avrocodec.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("Decode() error = %v, want *DecodeError", err)
				}
				if de.Reason != tc.reason {
					t.Fatalf("Decode() reason = %s (%v), want %s", de.Reason, err, tc.reason)
				}
				if !avrocodec.IsPermanent(err) || avrocodec.IsRetryable(err) {
					t.Fatalf("Decode() error %v: want permanent, not retryable", err)
				}
				for _, secret := range []string{"subject-1", "192.0.2.1", "Berlin"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error message leaks a field value: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if rec.Framing != tc.framing {
				t.Errorf("Framing = %v, want %v", rec.Framing, tc.framing)
			}
			if rec.Schema != v2 {
				t.Errorf("reader schema = %s v%d, want PageView v2", rec.Schema.FullName, rec.Schema.Version)
			}
			if got, _ := avrocodec.StringField(rec.Value, "subject_id"); got != "subject-1" {
				t.Errorf("subject_id = %q", got)
			}
			if got, _ := avrocodec.Field(rec.Value, "occurred_at"); !occurred.Equal(got.(time.Time)) {
				t.Errorf("occurred_at = %v, want %v", got, occurred)
			}
		})
	}
}

func TestDecodeRegistryUnavailable(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	v2 := version(t, cat, pageView, 2)
	reg, client := startRegistry(t)
	id := reg.Add("customer.events-value", v2.Text)
	codec := avrocodec.New(cat, client)
	data := confluent(t, id, v2, pageViewV2())

	reg.FailWith(http.StatusServiceUnavailable)
	_, err := codec.Decode(context.Background(), data)
	if !errors.Is(err, avrocodec.ErrRegistryUnavailable) || avrocodec.IsPermanent(err) {
		t.Fatalf("Decode() with registry down: error = %v, want retryable ErrRegistryUnavailable", err)
	}
	reg.FailWith(0)
	if _, err := codec.Decode(context.Background(), data); err != nil {
		t.Fatalf("Decode() after registry recovered: %v", err)
	}
}

func TestDecodeRegistryUnreachable(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	v2 := version(t, cat, pageView, 2)
	// Port 1 on loopback: nothing listens, the connection is refused.
	codec := avrocodec.New(cat, schemaregistry.New("http://127.0.0.1:1", nil))
	_, err := codec.Decode(context.Background(), confluent(t, 7, v2, pageViewV2()))
	if !avrocodec.IsRetryable(err) || avrocodec.IsPermanent(err) {
		t.Fatalf("Decode() error = %v, want retryable", err)
	}
}

func TestResolution(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	v1, v2 := version(t, cat, pageView, 1), version(t, cat, pageView, 2)

	// A catalog that only knows PageView v1, as an older service would.
	oldFS := fstest.MapFS{"page_view.v1.avsc": {Data: []byte(v1.Text)}}
	oldCat, err := avrocodec.LoadCatalog(oldFS)
	if err != nil {
		t.Fatal(err)
	}
	reg, client := startRegistry(t)
	idV2 := reg.Add("customer.events-value", v2.Text)

	// A v3 only the registry knows: one more field, one more enum symbol.
	v3Text := strings.Replace(v2.Text, `{"name": "consent_banner_shown"`, `{"name": "ab_test", "type": "string", "default": "control"},
    {"name": "consent_banner_shown"`, 1)
	v3Text = strings.Replace(v3Text, `"TABLET"]`, `"TABLET", "TV"]`, 1)
	idV3 := reg.Add("customer.events-value", v3Text)
	v3 := pageViewV2()
	v3["ab_test"] = "variant-b"
	v3["device_type"] = "TV"
	v3Codec := mustCodec(t, v3Text)

	tests := []struct {
		name   string
		codec  *avrocodec.Codec
		data   []byte
		reader int
		want   map[string]any // expected fields (unwrapped via Field)
		absent []string
	}{
		{
			name: "v1 single-object read as v2", codec: avrocodec.New(cat, nil), data: single(t, v1, pageViewV1()), reader: 2,
			want: map[string]any{
				"title": "Garden", "referrer": nil, "consent_banner_shown": false,
				"device_type": "UNKNOWN", "duration_ms": int32(1200), "geo.city": "Berlin",
			},
			absent: []string{"page_title"},
		},
		{
			name: "v2 confluent read by a catalog knowing only v1", codec: avrocodec.New(oldCat, client),
			data: confluent(t, idV2, v2, pageViewV2()), reader: 1,
			want:   map[string]any{"page_title": "Garden", "duration_ms": int32(1200), "ip_address": "192.0.2.1"},
			absent: []string{"title", "referrer", "device_type", "consent_banner_shown"},
		},
		{
			name: "v3 confluent read as v2: extra field dropped, unknown symbol takes enum default", codec: avrocodec.New(cat, client),
			data: confluent(t, idV3, v3Codec, v3), reader: 2,
			want:   map[string]any{"device_type": "UNKNOWN", "referrer": "https://search.example/", "consent_banner_shown": true},
			absent: []string{"ab_test"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, err := tc.codec.Decode(context.Background(), tc.data)
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if rec.Schema.Version != tc.reader || rec.Schema.FullName != pageView {
				t.Fatalf("reader = %s v%d, want v%d", rec.Schema.FullName, rec.Schema.Version, tc.reader)
			}
			for path, want := range tc.want {
				got, ok := avrocodec.Field(rec.Value, path)
				if !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v (%v), want %#v", path, got, ok, want)
				}
			}
			for _, path := range tc.absent {
				if _, ok := avrocodec.Field(rec.Value, path); ok {
					t.Errorf("%s present, want absent", path)
				}
			}
			// The resolved value must be encodable with the reader schema.
			if _, err := rec.Schema.Codec().BinaryFromNative(nil, rec.Value); err != nil {
				t.Errorf("resolved value does not encode with the reader schema: %v", err)
			}
		})
	}
}

// promotion schemas: T v1 is the writer, T v2 the reader.
const promoWriter = `{"type": "record", "name": "T", "namespace": "x", "fields": [
  {"name": "i", "type": "int"},
  {"name": "l", "type": "long"},
  {"name": "f", "type": "float"},
  {"name": "s", "type": "string"},
  {"name": "b", "type": "bytes"},
  {"name": "ts", "type": "long"},
  {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
  {"name": "u", "type": ["null", "int"]},
  {"name": "n", "type": ["null", "string"]},
  {"name": "arr", "type": {"type": "array", "items": "int"}},
  {"name": "m", "type": {"type": "map", "values": {"type": "record", "name": "Inner", "fields": [{"name": "k", "type": "int"}]}}},
  {"name": "gone", "type": "string"}
]}`

const promoReader = `{"type": "record", "name": "T", "namespace": "x", "fields": [
  {"name": "i", "type": "long"},
  {"name": "l", "type": "double"},
  {"name": "f", "type": "double"},
  {"name": "s", "type": "bytes"},
  {"name": "b", "type": "string"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "A"}},
  {"name": "u", "type": ["null", "string", "long"]},
  {"name": "n", "type": ["null", "string"]},
  {"name": "arr", "type": {"type": "array", "items": "double"}},
  {"name": "m", "type": {"type": "map", "values": {"type": "record", "name": "Inner", "fields": [
    {"name": "k", "type": "long"}, {"name": "extra", "type": ["null", "string"], "default": null}]}}},
  {"name": "added", "type": {"type": "record", "name": "Added", "fields": [{"name": "z", "type": "int"}]}, "default": {"z": 7}},
  {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["a"]}
]}`

func TestResolutionPromotions(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{
		"t.v1.avsc": {Data: []byte(promoWriter)},
		"t.v2.avsc": {Data: []byte(promoReader)},
	})
	if err != nil {
		t.Fatal(err)
	}
	writer := version(t, cat, "x.T", 1)
	value := map[string]any{
		"i": int32(-5), "l": int64(1) << 40, "f": float32(1.5), "s": "text", "b": []byte("raw"),
		"ts": occurred.UnixMilli(), "e": "C", "u": map[string]any{"int": int32(3)}, "n": nil,
		"arr":  []any{int32(1), int32(2)},
		"m":    map[string]any{"k1": map[string]any{"k": int32(9)}},
		"gone": "dropped",
	}
	rec, err := avrocodec.New(cat, nil).Decode(context.Background(), single(t, writer, value))
	if err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	want := map[string]any{
		"i": int64(-5), "l": float64(int64(1) << 40), "f": float64(1.5), "s": []byte("text"), "b": "raw",
		"ts": occurred, "e": "A", "u": map[string]any{"long": int64(3)}, "n": nil,
		"arr":   []any{float64(1), float64(2)},
		"m":     map[string]any{"k1": map[string]any{"k": int64(9), "extra": nil}},
		"added": map[string]any{"z": int32(7)},
		"tags":  []any{"a"},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := rec.Value[name]
			if gt, ok := got.(time.Time); ok {
				if !gt.Equal(w.(time.Time)) {
					t.Fatalf("%s = %v, want %v", name, gt, w)
				}
				return
			}
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("%s = %#v, want %#v", name, got, w)
			}
		})
	}
	if _, ok := rec.Value["gone"]; ok {
		t.Error("writer-only field gone was kept")
	}
}

func TestResolutionIncompatible(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		writer string
		reader string
		value  map[string]any
	}{
		{
			name:   "reader field without default",
			writer: `{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}`,
			reader: `{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}`,
			value:  map[string]any{"a": int32(1)},
		},
		{
			name:   "enum symbol unknown and no default",
			writer: `{"type":"record","name":"T","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}]}`,
			reader: `{"type":"record","name":"T","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}]}`,
			value:  map[string]any{"e": "B"},
		},
		{
			name:   "null into non-null",
			writer: `{"type":"record","name":"T","fields":[{"name":"a","type":["null","string"]}]}`,
			reader: `{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}`,
			value:  map[string]any{"a": nil},
		},
		{
			name:   "long into int",
			writer: `{"type":"record","name":"T","fields":[{"name":"a","type":"long"}]}`,
			reader: `{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}`,
			value:  map[string]any{"a": int64(1)},
		},
		{
			name:   "record renamed without alias",
			writer: `{"type":"record","name":"T","fields":[{"name":"r","type":{"type":"record","name":"A","fields":[]}}]}`,
			reader: `{"type":"record","name":"T","fields":[{"name":"r","type":{"type":"record","name":"B","fields":[]}}]}`,
			value:  map[string]any{"r": map[string]any{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cat, err := avrocodec.LoadCatalog(fstest.MapFS{
				"t.v1.avsc": {Data: []byte(tc.writer)},
				"t.v2.avsc": {Data: []byte(tc.reader)},
			})
			if err != nil {
				t.Fatal(err)
			}
			w, r := version(t, cat, "T", 1), version(t, cat, "T", 2)
			if err := avrocodec.CheckCompatible(w, r); err == nil {
				t.Error("CheckCompatible() = nil, want an error")
			}
			_, err = avrocodec.New(cat, nil).Decode(context.Background(), single(t, w, tc.value))
			var de *avrocodec.DecodeError
			if !errors.As(err, &de) || de.Reason != avrocodec.ReasonIncompatible {
				t.Fatalf("Decode() error = %v, want reason %s", err, avrocodec.ReasonIncompatible)
			}
		})
	}
}

func TestEncodeLike(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	v1, v2 := version(t, cat, pageView, 1), version(t, cat, pageView, 2)
	reg, client := startRegistry(t)
	idV1 := reg.Add("customer.events-value", v1.Text)
	idV2 := reg.Add("customer.events-value", v2.Text)
	codec := avrocodec.New(cat, client)

	tests := []struct {
		name      string
		in        []byte
		wantID    int
		wantFP    uint64
		wantTitle string
	}{
		{name: "single-object v1 re-encoded with v2", in: single(t, v1, pageViewV1()), wantFP: v2.Fingerprint},
		{name: "confluent v2 keeps its id", in: confluent(t, idV2, v2, pageViewV2()), wantID: idV2, wantFP: v2.Fingerprint},
		{name: "confluent v1 resolved back to v1", in: confluent(t, idV1, v1, pageViewV1()), wantID: idV1, wantFP: v1.Fingerprint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rec, err := codec.Decode(ctx, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			redacted := make(map[string]any, len(rec.Value))
			for k, v := range rec.Value {
				redacted[k] = v
			}
			redacted["ip_address"] = nil
			out, err := codec.EncodeLike(ctx, rec, redacted)
			if err != nil {
				t.Fatalf("EncodeLike() error = %v", err)
			}
			back, err := codec.Decode(ctx, out)
			if err != nil {
				t.Fatalf("Decode(EncodeLike()) error = %v", err)
			}
			if back.Framing != rec.Framing || back.WriterID != tc.wantID || back.WriterFingerprint != tc.wantFP {
				t.Errorf("re-encoded as %v id %d fp %x, want %v id %d fp %x",
					back.Framing, back.WriterID, back.WriterFingerprint, rec.Framing, tc.wantID, tc.wantFP)
			}
			if v, ok := avrocodec.Field(back.Value, "ip_address"); !ok || v != nil {
				t.Errorf("ip_address = %v, want redacted to null", v)
			}
			if s, _ := avrocodec.StringField(back.Value, "title"); s != "Garden" {
				t.Errorf("title = %q, want Garden", s)
			}
		})
	}

	t.Run("single encoder", func(t *testing.T) {
		t.Parallel()
		b, err := codec.EncodeSingle(pageView, pageViewV2())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := codec.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		old, ok := cat.Version(pageView, 1)
		if !ok {
			t.Fatal("Version(PageView, 1) not found")
		}
		b, err = old.EncodeSingle(pageViewV1())
		if err != nil {
			t.Fatal(err)
		}
		rec, err := codec.Decode(context.Background(), b)
		if err != nil || rec.WriterFingerprint != v1.Fingerprint || rec.Schema != v2 {
			t.Fatalf("Decode(v1 single) = %+v, %v; want writer v1, reader v2", rec, err)
		}
		_, err = codec.EncodeSingle("nope.Nope", pageViewV2())
		if !errors.Is(err, avrocodec.ErrUnknownSchema) || !avrocodec.IsPermanent(err) {
			t.Fatalf("EncodeSingle(unknown) error = %v", err)
		}
		bad := pageViewV2()
		bad["device_type"] = "SECRET-VALUE"
		_, err = codec.EncodeSingle(pageView, bad)
		var ee *avrocodec.EncodeError
		if !errors.As(err, &ee) || strings.Contains(err.Error(), "SECRET-VALUE") {
			t.Fatalf("EncodeSingle(bad) error = %v, want *EncodeError without the value", err)
		}
	})
}

func TestRegistryCaching(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	v2 := version(t, cat, pageView, 2)
	reg, client := startRegistry(t)
	id := reg.Add("customer.events-value", v2.Text)
	codec := avrocodec.New(cat, client)
	data := confluent(t, id, v2, pageViewV2())

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if _, err := codec.Decode(context.Background(), data); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if hits := reg.Hits("GET", "/schemas/ids/1"); hits != 1 {
		t.Fatalf("registry hits = %d, want 1", hits)
	}
	// Unknown ids are not cached: a schema may be registered later.
	missing := confluent(t, 2, v2, pageViewV2())
	for range 2 {
		if _, err := codec.Decode(context.Background(), missing); err == nil {
			t.Fatal("Decode(unknown id) succeeded")
		}
	}
	if hits := reg.Hits("GET", "/schemas/ids/2"); hits != 2 {
		t.Fatalf("registry hits for unknown id = %d, want 2", hits)
	}
}

func TestWriterUnknownToCatalog(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	text := `{"type":"record","name":"Other","namespace":"thirdparty","fields":[
	  {"name":"event_id","type":"string"},
	  {"name":"email","type":"string","data_category":"user.contact.email"}]}`
	reg, client := startRegistry(t)
	id := reg.Add("other-value", text)
	data := confluent(t, id, mustCodec(t, text), map[string]any{"event_id": "e", "email": "x@example.com"})
	rec, err := avrocodec.New(cat, client).Decode(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Schema.FullName != "thirdparty.Other" || rec.Schema.Annotations["email"] != "user.contact.email" {
		t.Fatalf("reader = %s with annotations %v, want the writer schema and its annotations", rec.Schema.FullName, rec.Schema.Annotations)
	}
}

// breakingVersions are the version pairs documented as not compatible
// (schemas/README.md): full name -> [older, newer]. Their readers decode by
// writer schema.
var breakingVersions = map[string][2]int{
	"consentgate.audit.AuditRecord": {1, 2}, // one record per event and stream -> one per event
}

func TestCatalogVersionsCompatible(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	names := map[string]bool{}
	for _, s := range cat.Schemas() {
		names[s.FullName] = true
	}
	for name := range names {
		versions := cat.Versions(name)
		for i, a := range versions {
			for _, b := range versions[i+1:] {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					if breakingVersions[name] == [2]int{a.Version, b.Version} {
						if avrocodec.CheckCompatible(a, b) == nil && avrocodec.CheckCompatible(b, a) == nil {
							t.Errorf("v%d and v%d are compatible after all: remove them from breakingVersions", a.Version, b.Version)
						}
						return
					}
					if err := avrocodec.CheckCompatible(a, b); err != nil {
						t.Errorf("v%d data as v%d (backward): %v", a.Version, b.Version, err)
					}
					if err := avrocodec.CheckCompatible(b, a); err != nil {
						t.Errorf("v%d data as v%d (forward): %v", b.Version, a.Version, err)
					}
				})
			}
		}
	}
}

func TestAnnotations(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	tests := []struct {
		schema string
		path   string
		want   string
	}{
		{purchase, "subject_id", "user.id"},
		{purchase, "items", "user.behavior.purchase"},
		{purchase, "items[].category", "user.behavior.purchase"},
		{purchase, "items[].health_category", "user.health"},
		{purchase, "shipping_address", "user.contact.address"},
		{purchase, "shipping_address.street", "user.contact.address.street"},
		{purchase, "payment.card_last4", "user.financial.card"},
		{purchase, "email", "user.contact.email"},
		{purchase, "currency", ""},
		{purchase, "event_id", ""},
		{pageView, "geo.city", "user.location.approximate"},
		{pageView, "ip_address", "user.device.ip_address"},
		{pageView, "title", "user.behavior.browsing"},
		{pageView, "consent_banner_shown", ""},
		{"consentgate.events.EmailEngagement", "email", "user.contact.email"},
		{"consentgate.events.EmailEngagement", "user_agent", "user.device.user_agent"},
		{"consentgate.audit.AuditRecord", "subject_id", "user.id"},
	}
	for _, tc := range tests {
		t.Run(tc.schema+"/"+tc.path, func(t *testing.T) {
			t.Parallel()
			s, ok := cat.SchemaByName(tc.schema)
			if !ok {
				t.Fatalf("no schema %s", tc.schema)
			}
			if got := s.Annotations[tc.path]; got != tc.want {
				t.Errorf("Annotations[%q] = %q, want %q", tc.path, got, tc.want)
			}
			found := false
			for _, f := range s.Fields {
				found = found || f.Path == tc.path
			}
			if !found {
				t.Errorf("Fields has no path %q", tc.path)
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	t.Parallel()
	for _, s := range loadCatalog(t).Schemas() {
		if !strings.HasPrefix(s.FullName, "consentgate.events.") {
			continue
		}
		t.Run(s.File, func(t *testing.T) {
			t.Parallel()
			want := []string{"event_id", "subject_id", "occurred_at"}
			for i, w := range want {
				if i >= len(s.Fields) || s.Fields[i].Path != w {
					t.Fatalf("field %d is not %s", i, w)
				}
			}
			if s.Fields[1].Category != "user.id" || s.Fields[2].Logical != "timestamp-millis" {
				t.Errorf("envelope annotations wrong: %+v", s.Fields[:3])
			}
		})
	}
}

func TestField(t *testing.T) {
	t.Parallel()
	v := purchaseV1()
	tests := []struct {
		path   string
		want   any
		wantOK bool
	}{
		{"order_id", "order-9", true},
		{"email", "a.person@example.com", true},
		{"phone", nil, true},
		{"shipping_address.city", "Berlin", true},
		{"payment.card_last4", "4242", true},
		{"items[].sku", []any{"sku-1", "sku-2"}, true},
		{"items[].health_category", []any{nil, "pharmacy"}, true},
		{"items.sku", nil, false},
		{"nope", nil, false},
		{"order_id.x", nil, false},
		{"", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			got, ok := avrocodec.Field(v, tc.path)
			if ok != tc.wantOK || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Field(%q) = %#v, %v; want %#v, %v", tc.path, got, ok, tc.want, tc.wantOK)
			}
		})
	}
	if _, ok := avrocodec.StringField(v, "phone"); ok {
		t.Error("StringField(null) ok = true")
	}
}

func TestLoadCatalogErrors(t *testing.T) {
	t.Parallel()
	rec := func(name string) []byte {
		return []byte(`{"type":"record","name":"` + name + `","fields":[]}`)
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"no files", fstest.MapFS{"README.md": {Data: []byte("x")}}, "no .avsc"},
		{"bad json", fstest.MapFS{"a.avsc": {Data: []byte("{")}, "b.avsc": {Data: rec("B")}}, "a.avsc"},
		{"unknown type", fstest.MapFS{"bad.v1.avsc": {Data: []byte(`{"type":"record","name":"X","fields":[{"name":"a","type":"Nope"}]}`)}}, "bad.v1.avsc"},
		{"not a record", fstest.MapFS{"s.avsc": {Data: []byte(`"string"`)}}, "s.avsc"},
		{"duplicate version", fstest.MapFS{"x.avsc": {Data: rec("X")}, "x.v1.avsc": {Data: rec("X")}}, "also defined"},
		{"version zero", fstest.MapFS{"x.v0.avsc": {Data: rec("X")}}, "x.v0.avsc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := avrocodec.LoadCatalog(tc.fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadCatalog() error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func mustCodec(t testing.TB, text string) *avrocodec.Schema {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"s.avsc": {Data: []byte(text)}})
	if err != nil {
		t.Fatal(err)
	}
	return cat.Schemas()[0]
}
