package avrocodec_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/schemas"
)

// The tests of this file check Codec.ReadEnvelope against Codec.Decode, the
// reference: on every input both succeed or both fail with the same
// reason, and on success the envelope holds what the decoded record says.

// trickyV1 and trickyV2 are two versions of a test schema whose resolution
// fails for some values only: an enum symbol the reader lacks without a
// default (BLUE), a union branch the reader cannot take (boolean), and
// which exercises every other rule: promotions, an enum default, a
// renamed field, a writer-only field, a reader-only field with a default,
// a recursive record, an array of nulls, a map, a fixed, and an envelope
// that is not first in the reader.
const trickyV1 = `{"type":"record","name":"Tricky","namespace":"consentgate.test","fields":[
 {"name":"event_id","type":"string"},
 {"name":"subject_id","type":"string"},
 {"name":"occurred_at","type":"long"},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
 {"name":"size","type":{"type":"enum","name":"Size","symbols":["S","M","L"]}},
 {"name":"choice","type":["null","int","string","boolean"],"default":null},
 {"name":"amount","type":"int"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":["null","int"]}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"next","type":["null","Tricky"],"default":null},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"old_name","type":"int"},
 {"name":"flag","type":"boolean"},
 {"name":"gone","type":["null",{"type":"record","name":"Gone","fields":[{"name":"a","type":"string"}]}],"default":null},
 {"name":"when","type":{"type":"int","logicalType":"date"}},
 {"name":"ratio","type":"float"}
]}`

const trickyV2 = `{"type":"record","name":"Tricky","namespace":"consentgate.test","fields":[
 {"name":"occurred_at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"event_id","type":"string"},
 {"name":"subject_id","type":["string","null"],"default":"anon"},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
 {"name":"size","type":{"type":"enum","name":"Size","symbols":["S","M"],"default":"M"}},
 {"name":"choice","type":["null","long","string"],"default":null},
 {"name":"amount","type":"double"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":["null","long"]}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"next","type":["null","Tricky"],"default":null},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"extra","type":"string","default":"x"},
 {"name":"renamed","aliases":["old_name"],"type":"int","default":0},
 {"name":"flag","type":"boolean"},
 {"name":"when","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"ratio","type":"double"}
]}`

// Registry writer schemas of the same name (Confluent framing), read as
// trickyV2, and of names the catalog does not know (read as themselves).
var registryWriters = map[int]string{
	// The envelope last, as unions; event_id null cannot be read as the
	// reader's string.
	101: `{"type":"record","name":"Tricky","namespace":"consentgate.test","fields":[
 {"name":"occurred_at","type":"long"},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["GREEN","RED"]}},
 {"name":"size","type":{"type":"enum","name":"Size","symbols":["S"]}},
 {"name":"amount","type":"long"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":"long"}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"flag","type":"boolean"},
 {"name":"when","type":"long"},
 {"name":"ratio","type":"double"},
 {"name":"subject_id","type":["null","string"],"default":null},
 {"name":"event_id","type":["null","string"],"default":null}
]}`,
	// subject_id as bytes, promoted to the reader's string; the
	// envelope's event_id missing (the reader has no default: every
	// value is incompatible).
	102: `{"type":"record","name":"Tricky","namespace":"consentgate.test","fields":[
 {"name":"subject_id","type":"bytes"},
 {"name":"occurred_at","type":"long"},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED"]}},
 {"name":"amount","type":"float"},
 {"name":"tags","type":{"type":"array","items":"bytes"}},
 {"name":"attrs","type":{"type":"map","values":"null"}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"flag","type":"boolean"},
 {"name":"when","type":"long"},
 {"name":"ratio","type":"float"}
]}`,
	// Like 101 with event_id a string: resolvable.
	103: `{"type":"record","name":"Tricky","namespace":"consentgate.test","fields":[
 {"name":"occurred_at","type":"long"},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["GREEN","RED"]}},
 {"name":"size","type":{"type":"enum","name":"Size","symbols":["XL","S"]}},
 {"name":"amount","type":"long"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":["long","null"]}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"flag","type":"boolean"},
 {"name":"when","type":"long"},
 {"name":"ratio","type":"double"},
 {"name":"subject_id","type":["string","null"]},
 {"name":"event_id","type":"bytes"}
]}`,
	// Like 103 with tags an array of nulls, which the reader's strings
	// cannot take: incompatible when not empty.
	107: `{"type":"record","name":"Tricky","namespace":"consentgate.test","fields":[
 {"name":"occurred_at","type":"long"},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["GREEN","RED"]}},
 {"name":"size","type":{"type":"enum","name":"Size","symbols":["S"]}},
 {"name":"amount","type":"long"},
 {"name":"tags","type":{"type":"array","items":"null"}},
 {"name":"attrs","type":{"type":"map","values":["long","null"]}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"flag","type":"boolean"},
 {"name":"when","type":"long"},
 {"name":"ratio","type":"double"},
 {"name":"subject_id","type":["string","null"]},
 {"name":"event_id","type":"bytes"}
]}`,
	// Without subject_id: the reader's default.
	108: `{"type":"record","name":"Tricky","namespace":"consentgate.test","fields":[
 {"name":"event_id","type":"string"},
 {"name":"occurred_at","type":"long"},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["GREEN","RED"]}},
 {"name":"size","type":{"type":"enum","name":"Size","symbols":["XL","S"]}},
 {"name":"amount","type":"long"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":["long","null"]}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"flag","type":"boolean"},
 {"name":"when","type":"long"},
 {"name":"ratio","type":"double"}
]}`,
	// A name the catalog does not know: read as itself; the envelope is
	// an enum and a union, in the middle.
	104: `{"type":"record","name":"Other","namespace":"consentgate.test","fields":[
 {"name":"n","type":"long"},
 {"name":"event_id","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
 {"name":"subject_id","type":["null","string","long"]},
 {"name":"rest","type":{"type":"map","values":{"type":"array","items":["null","double","Kind"]}}}
]}`,
	// subject_id a record: read with the full decoder.
	105: `{"type":"record","name":"Other2","namespace":"consentgate.test","fields":[
 {"name":"event_id","type":"string"},
 {"name":"subject_id","type":["null",{"type":"record","name":"Sub","fields":[{"name":"string","type":"string"}]}]}
]}`,
	// A decimal: read with the full decoder.
	106: `{"type":"record","name":"Other3","namespace":"consentgate.test","fields":[
 {"name":"event_id","type":"string"},
 {"name":"subject_id","type":"string"},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}
]}`,
}

// envCodec returns a codec over the project catalog plus the tricky
// schemas, with a registry serving registryWriters and every catalog
// schema under 200+i, and the writer schemas to generate events of.
func envCodec(t testing.TB) (*avrocodec.Codec, []*avrocodec.Schema, map[*avrocodec.Schema]int) {
	t.Helper()
	fsys := fstest.MapFS{
		"tricky.v1.avsc": {Data: []byte(trickyV1)},
		"tricky.v2.avsc": {Data: []byte(trickyV2)},
	}
	files, err := fs.Glob(schemas.FS, "*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(schemas.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		fsys[f] = &fstest.MapFile{Data: b}
	}
	cat, err := avrocodec.LoadCatalog(fsys)
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	reg := staticRegistry{}
	for id, text := range registryWriters {
		reg[id] = text
	}
	// The schema model's test schema: every kind, recursion, logical
	// types; with its decimals (read with the full decoder) and without.
	reg[109] = modelSchema
	noDecimal := regexp.MustCompile(`(?m)^ *\{"name": "(price|amount)".*\n`).ReplaceAllString(modelSchema, "")
	if noDecimal == modelSchema {
		t.Fatal("model schema without decimals: no field removed")
	}
	reg[110] = noDecimal
	ids := map[*avrocodec.Schema]int{}
	for i, s := range cat.Schemas() {
		reg[200+i] = s.Text
		ids[s] = 200 + i
	}
	codec := avrocodec.New(cat, reg)
	writers := cat.Schemas()
	for _, id := range slices.Sorted(maps.Keys(reg)) { // a fixed order: the tests are reproducible
		if id >= 200 {
			continue
		}
		data := []byte{0, 0, 0, 0, byte(id)}
		_, _ = codec.Decode(context.Background(), data) // fetch the writer schema
		s, err := codec.WriterByID(context.Background(), id)
		if err != nil {
			t.Fatalf("writer %d: %v", id, err)
		}
		writers = append(writers, s)
		ids[s] = id
	}
	return codec, writers, ids
}

// valueGen generates random native values of a schema type.
type valueGen struct {
	rnd *rand.Rand
}

func (g *valueGen) str() string {
	n := g.rnd.IntN(12)
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcxyz-_09\xff\xc3"[g.rnd.IntN(12)]
	}
	return string(b)
}

func (g *valueGen) value(t *avrocodec.Type, depth int) any {
	switch t.Kind {
	case avrocodec.KindNull:
		return nil
	case avrocodec.KindBoolean:
		return g.rnd.IntN(2) == 1
	case avrocodec.KindInt:
		x := int32(g.rnd.Uint32())
		if g.rnd.IntN(2) == 0 {
			x = int32(g.rnd.IntN(100)) - 50
		}
		switch t.Logical {
		case "date":
			return time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(x%100000))
		case "time-millis":
			return time.Duration(x) * time.Millisecond
		}
		return x
	case avrocodec.KindLong:
		x := int64(g.rnd.Uint64())
		if g.rnd.IntN(2) == 0 {
			x = int64(g.rnd.IntN(1000)) - 500
		}
		switch t.Logical {
		case "timestamp-millis":
			return time.UnixMilli(x % (1 << 45)).UTC()
		case "timestamp-micros":
			return time.UnixMicro(x % (1 << 55)).UTC()
		case "time-micros":
			return time.Duration(x%(1<<40)) * time.Microsecond
		}
		return x
	case avrocodec.KindFloat:
		return float32(g.rnd.NormFloat64())
	case avrocodec.KindDouble:
		return g.rnd.NormFloat64()
	case avrocodec.KindString:
		return g.str()
	case avrocodec.KindBytes:
		if t.Logical == "decimal" {
			return big.NewRat(1+int64(g.rnd.IntN(100000)), 100) // not 0: goavro cannot encode a zero fixed decimal
		}
		return []byte(g.str())
	case avrocodec.KindFixed:
		if t.Logical == "decimal" {
			return big.NewRat(1+int64(g.rnd.IntN(100000)), 100) // not 0: goavro cannot encode a zero fixed decimal
		}
		b := make([]byte, t.Size)
		for i := range b {
			b[i] = byte(g.rnd.Uint32())
		}
		return b
	case avrocodec.KindEnum:
		return t.Symbols[g.rnd.IntN(len(t.Symbols))]
	case avrocodec.KindArray:
		n := g.rnd.IntN(4)
		if depth > 3 {
			n = 0
		}
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(t.Items, depth+1)
		}
		return out
	case avrocodec.KindMap:
		n := g.rnd.IntN(4)
		if depth > 3 {
			n = 0
		}
		out := map[string]any{}
		for range n {
			out[g.str()] = g.value(t.Values, depth+1)
		}
		return out
	case avrocodec.KindRecord:
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			out[f.Name] = g.value(f.Type, depth+1)
		}
		return out
	case avrocodec.KindUnion:
		var choices []*avrocodec.Type
		for _, b := range t.Branches {
			if depth > 3 && b.Kind == avrocodec.KindRecord {
				continue
			}
			choices = append(choices, b)
		}
		b := choices[g.rnd.IntN(len(choices))]
		if b.Kind == avrocodec.KindNull {
			return nil
		}
		return map[string]any{b.UnionKey(): g.value(b, depth+1)}
	}
	panic("unknown kind " + t.Kind)
}

// event generates one encoded event of writer s in a random framing.
func (g *valueGen) event(t testing.TB, s *avrocodec.Schema, id int) []byte {
	t.Helper()
	v := g.value(s.Root(), 0).(map[string]any)
	var hdr []byte
	if _, inCatalog := byFingerprint(s); inCatalog && (id == 0 || g.rnd.IntN(2) == 0) {
		hdr = []byte{0xC3, 0x01}
		hdr = binary.LittleEndian.AppendUint64(hdr, s.Fingerprint)
	} else {
		hdr = make([]byte, 5)
		binary.BigEndian.PutUint32(hdr[1:], uint32(id))
	}
	b, err := s.Codec().BinaryFromNative(hdr, v)
	if err != nil {
		t.Fatalf("encode %s: %v", s.FullName, err)
	}
	return b
}

func byFingerprint(s *avrocodec.Schema) (string, bool) { return s.File, s.File != "" }

// verdict compares ReadEnvelope with Decode on data and returns the
// outcome's reason ("ok" on success).
func verdict(t testing.TB, codec *avrocodec.Codec, data []byte) string {
	t.Helper()
	ctx := context.Background()
	rec, derr := codec.Decode(ctx, data)
	var env avrocodec.Envelope
	eerr := codec.ReadEnvelope(ctx, data, &env)
	if (derr == nil) != (eerr == nil) {
		t.Fatalf("Decode error = %v, ReadEnvelope error = %v, for % x", derr, eerr, data)
	}
	if derr != nil {
		if avrocodec.IsRetryable(derr) != avrocodec.IsRetryable(eerr) {
			t.Fatalf("Decode error = %v, ReadEnvelope error = %v: retryable differs", derr, eerr)
		}
		var de, ee *avrocodec.DecodeError
		if errors.As(derr, &de) != errors.As(eerr, &ee) {
			t.Fatalf("Decode error = %v, ReadEnvelope error = %v: kind differs", derr, eerr)
		}
		if de == nil {
			return "retryable"
		}
		if de.Reason != ee.Reason {
			t.Fatalf("Decode reason = %s (%v), ReadEnvelope reason = %s (%v), for % x", de.Reason, derr, ee.Reason, eerr, data)
		}
		return string(de.Reason)
	}
	wantEvent, _ := avrocodec.StringField(rec.Value, "event_id")
	wantSubject, _ := avrocodec.StringField(rec.Value, "subject_id")
	if env.EventID != wantEvent || env.SubjectID != wantSubject {
		t.Fatalf("envelope ids = %q, %q; decoded record has %q, %q", env.EventID, env.SubjectID, wantEvent, wantSubject)
	}
	if env.Schema != rec.Schema || env.Writer() != rec.Writer() || env.Framing != rec.Framing ||
		env.WriterID != rec.WriterID || env.WriterFingerprint != rec.WriterFingerprint {
		t.Fatalf("envelope %+v does not describe record %+v", env, rec)
	}
	got, err := codec.DecodeEnvelope(&env)
	if err != nil {
		t.Fatalf("DecodeEnvelope error = %v after a successful envelope", err)
	}
	if got.Schema != rec.Schema || got.Writer() != rec.Writer() || got.Framing != rec.Framing || got.WriterID != rec.WriterID ||
		got.WriterFingerprint != rec.WriterFingerprint || !sameNative(got.Value, rec.Value) {
		t.Fatalf("DecodeEnvelope = %#v, Decode = %#v", got, rec)
	}
	return "ok"
}

func TestEnvelopeMatchesDecode(t *testing.T) {
	t.Parallel()
	codec, writers, ids := envCodec(t)
	g := &valueGen{rnd: rand.New(rand.NewPCG(1, 2))}
	seen := map[string]int{}
	fast := 0
	for _, w := range writers {
		reader, ok := codec.SchemaByName(w.FullName)
		if !ok {
			reader = w
		}
		if avrocodec.UsesProgram(codec, w, reader) {
			fast++
		}
		for range 300 {
			seen[fmt.Sprintf("%s/%d %s", w.FullName, ids[w], verdict(t, codec, g.event(t, w, ids[w])))]++
		}
	}
	// Every project schema is read with a program, not the fallback.
	for _, s := range writers {
		if ids[s] < 200 {
			continue // registry writers: some are read with the full decoder on purpose
		}
		r, _ := codec.SchemaByName(s.FullName)
		if !avrocodec.UsesProgram(codec, s, r) {
			t.Errorf("%s v%d is read with the full decoder", s.FullName, s.Version)
		}
	}
	slow := map[int]bool{105: true, 106: true, 109: true} // envelope of record type, decimals
	for _, w := range writers {
		if id := ids[w]; id < 200 {
			r, ok := codec.SchemaByName(w.FullName)
			if !ok {
				r = w
			}
			if got := avrocodec.UsesProgram(codec, w, r); got == slow[id] {
				t.Errorf("writer %d: read with a program = %v, want %v", id, got, !slow[id])
			}
		}
	}
	t.Logf("outcomes: %v (%d of %d writers with a program)", seen, fast, len(writers))
	// The catalog's first Tricky version (its registry id follows the
	// catalog's other schemas, so it moves when a schema is added).
	trickyID := 0
	for s, id := range ids {
		if s.FullName == "consentgate.test.Tricky" && id >= 200 && (trickyID == 0 || id < trickyID) {
			trickyID = id
		}
	}
	for _, want := range []string{
		fmt.Sprintf("consentgate.test.Tricky/%d ok", trickyID), fmt.Sprintf("consentgate.test.Tricky/%d incompatible", trickyID),
		"consentgate.test.Tricky/101 ok", "consentgate.test.Tricky/101 incompatible",
		"consentgate.test.Tricky/102 incompatible",
		"consentgate.test.Tricky/103 ok", "consentgate.test.Tricky/108 ok",
		"consentgate.test.Tricky/107 ok", "consentgate.test.Tricky/107 incompatible",
		"test.model.Node/109 ok", "test.model.Node/110 ok",
		"consentgate.test.Other/104 ok", "consentgate.test.Other2/105 ok", "consentgate.test.Other3/106 ok",
	} {
		if seen[want] == 0 {
			t.Errorf("no generated event gave %q", want)
		}
	}
}

func TestEnvelopeMutations(t *testing.T) {
	t.Parallel()
	codec, writers, ids := envCodec(t)
	g := &valueGen{rnd: rand.New(rand.NewPCG(3, 4))}
	seen := map[string]int{}
	for _, w := range writers {
		for range 60 {
			valid := g.event(t, w, ids[w])
			for range 20 {
				seen[verdict(t, codec, mutate(g.rnd, valid))]++
			}
		}
	}
	t.Logf("outcomes: %v", seen)
	for _, r := range []avrocodec.Reason{avrocodec.ReasonBadPayload, avrocodec.ReasonTrailingBytes, avrocodec.ReasonIncompatible,
		avrocodec.ReasonTruncated, avrocodec.ReasonBadMagic, avrocodec.ReasonUnknownFingerprint, avrocodec.ReasonUnknownSchemaID} {
		if seen[string(r)] == 0 {
			t.Errorf("no mutation gave %s", r)
		}
	}
	if seen["ok"] == 0 {
		t.Error("no mutation decoded")
	}
}

// mutate returns a copy of valid with a random change: a byte flipped,
// set or inserted, the data truncated, or bytes appended.
func mutate(rnd *rand.Rand, valid []byte) []byte {
	b := append([]byte(nil), valid...)
	for n := 1 + rnd.IntN(3); n > 0; n-- {
		i := rnd.IntN(len(b) + 1)
		switch rnd.IntN(7) {
		case 0:
			if i < len(b) {
				b[i] ^= 1 << rnd.IntN(8)
			}
		case 1:
			if i < len(b) {
				b[i] = []byte{0x00, 0x01, 0x02, 0x7f, 0x80, 0xff}[rnd.IntN(6)]
			}
		case 2:
			b = b[:i]
		case 3:
			b = append(b, byte(rnd.Uint32()))
		case 4:
			b = append(b[:i:i], append([]byte{byte(rnd.Uint32())}, b[i:]...)...)
		case 5:
			// A large block count or length: zig-zag 2^21.
			b = append(b[:i:i], append([]byte{0x80, 0x80, 0x80, 0x01}, b[i:]...)...)
		case 6:
			if i < len(b) {
				b = append(b[:i:i], b[i+1:]...)
			}
		}
	}
	return b
}

// TestEnvelopeEdgeCases checks inputs the generators rarely make.
func TestEnvelopeEdgeCases(t *testing.T) {
	t.Parallel()
	codec, _, _ := envCodec(t)
	other := func(body ...byte) []byte { return append([]byte{0, 0, 0, 0, 104}, body...) }
	cases := map[string]struct {
		data []byte
		want string
	}{
		// Other: n long, event_id enum, subject_id union, rest map.
		"ok":                      {other(0x02, 0x02, 0x02, 0x04, 'a', 'b', 0x00), "ok"},
		"long varint":             {other(0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00, 0x00, 0x00), "ok"},
		"enum index out of range": {other(0x02, 0x06, 0x00, 0x00), "bad_payload"},
		"negative enum index":     {other(0x02, 0x01, 0x00, 0x00), "bad_payload"},
		"union index":             {other(0x02, 0x00, 0x06, 0x00), "bad_payload"},
		"negative string length":  {other(0x02, 0x00, 0x02, 0x01, 0x00), "bad_payload"},
		"string beyond datum":     {other(0x02, 0x00, 0x02, 0x08, 'a'), "bad_payload"},
		"invalid utf-8 kept":      {other(0x02, 0x00, 0x02, 0x02, 0xff, 0x00), "ok"},
		"truncated varint":        {other(0x82), "bad_payload"},
		"trailing bytes":          {other(0x02, 0x00, 0x00, 0x00, 0x00), "trailing_bytes"},
		"block count over max":    {other(0x02, 0x00, 0x00, 0x82, 0x80, 0x80, 0x01), "bad_payload"},
		"block count at max": {append(other(0x02, 0x00, 0x00, 0x02, 0x02, 'k', 0x80, 0x80, 0x80, 0x01),
			append(make([]byte, 1<<20), 0x00, 0x00)...), "ok"},
		"negative block count":  {other(0x02, 0x00, 0x00, 0x01, 0x08, 0x02, 'k', 0x00, 0x00), "ok"},
		"min int64 block count": {other(0x02, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "bad_payload"},
		"duplicate map key":     {other(0x02, 0x00, 0x00, 0x04, 0x02, 'k', 0x00, 0x02, 'k', 0x00, 0x00), "bad_payload"},
		"duplicate key across blocks": {other(0x02, 0x00, 0x00, 0x02, 0x02, 'k', 0x00, 0x02, 0x02, 'k', 0x00, 0x00),
			"bad_payload"},
		"bad double in array": {other(0x02, 0x00, 0x00, 0x02, 0x00, 0x02, 0x02, 0x00), "bad_payload"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := verdict(t, codec, c.data); got != c.want {
				t.Errorf("outcome = %s, want %s", got, c.want)
			}
		})
	}
	// A writer without subject_id: the reader's default, "anon".
	w108, err := codec.WriterByID(context.Background(), 108)
	if err != nil {
		t.Fatal(err)
	}
	data := (&valueGen{rnd: rand.New(rand.NewPCG(9, 9))}).event(t, w108, 108)
	if got := verdict(t, codec, data); got != "ok" {
		t.Fatalf("writer 108: %s", got)
	}
	if env, err := codec.Envelope(context.Background(), data); err != nil || env.SubjectID != "anon" {
		t.Errorf("writer 108: envelope %+v, %v; want subject_id anon", env, err)
	}
	// Many distinct map keys (the set beyond 32 keys).
	body := []byte{0x02, 0x00, 0x00, 0x50} // 40 entries
	for i := range 40 {
		body = append(body, 0x04, 'a'+byte(i/26), 'a'+byte(i%26), 0x00)
	}
	if got := verdict(t, codec, other(append(body, 0x00)...)); got != "ok" {
		t.Errorf("40 distinct keys: %s", got)
	}
	body[len(body)-3], body[len(body)-2] = 'a', 'a' // the last key becomes "aa", the first one's
	if got := verdict(t, codec, other(append(body, 0x00)...)); got != "bad_payload" {
		t.Errorf("duplicate among 40 keys: %s", got)
	}
}

func FuzzEnvelopeMatchesDecode(f *testing.F) {
	codec, writers, ids := envCodec(f)
	g := &valueGen{rnd: rand.New(rand.NewPCG(5, 6))}
	for _, w := range writers {
		f.Add(g.event(f, w, ids[w]))
	}
	f.Add([]byte{})
	f.Add([]byte{0xC3, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		verdict(t, codec, data)
	})
}

// sameNative reports whether two native values are equal: same Go types,
// NaN equal to NaN, decimals by value.
func sameNative(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameNative(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameNative(x[i], y[i]) {
				return false
			}
		}
		return true
	case *big.Rat:
		y, ok := b.(*big.Rat)
		return ok && x.Cmp(y) == 0
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || (x != x && y != y))
	case float32:
		y, ok := b.(float32)
		return ok && (x == y || (x != x && y != y))
	}
	return reflect.DeepEqual(a, b)
}
