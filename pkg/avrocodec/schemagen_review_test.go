package avrocodec_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"testing/fstest"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// schemaGen makes random writer schemas and reader versions of them
// (promotions, enum symbols added and removed, union branches added and
// removed, fields dropped, added with defaults, renamed with aliases),
// with named types in every namespace form, so that ReadEnvelope is
// checked against Decode on schema pairs the catalog has no example of.
type schemaGen struct {
	rnd *rand.Rand
	n   int
}

func (g *schemaGen) name() string { g.n++; return fmt.Sprintf("T%d", g.n) }

func (g *schemaGen) named(m map[string]any) map[string]any {
	m["name"] = g.name()
	switch g.rnd.IntN(6) {
	case 1:
		m["namespace"] = ""
	case 2:
		m["namespace"] = "g.ns"
	case 3:
		m["name"] = "d.ns." + m["name"].(string)
	case 4:
		m["name"] = "d.ns." + m["name"].(string)
		m["namespace"] = "other"
	}
	return m
}

func (g *schemaGen) typ(depth int, noUnion bool) any {
	k := g.rnd.IntN(16)
	if depth > 2 && k >= 10 {
		k = g.rnd.IntN(10)
	}
	switch k {
	case 0:
		return "null"
	case 1:
		return "boolean"
	case 2:
		return "int"
	case 3:
		return "long"
	case 4:
		return "float"
	case 5:
		return "double"
	case 6:
		return "string"
	case 7:
		return "bytes"
	case 8:
		return map[string]any{"type": "int", "logicalType": "date"}
	case 9:
		return map[string]any{"type": "long", "logicalType": "timestamp-millis"}
	case 10:
		syms := []any{"A", "B", "C"}[:1+g.rnd.IntN(3)]
		return g.named(map[string]any{"type": "enum", "symbols": syms})
	case 11:
		return g.named(map[string]any{"type": "fixed", "size": 1 + g.rnd.IntN(3)})
	case 12:
		return map[string]any{"type": "array", "items": g.typ(depth+1, false)}
	case 13:
		return map[string]any{"type": "map", "values": g.typ(depth+1, false)}
	case 14:
		if noUnion {
			return "string"
		}
		seen := map[string]bool{}
		var bs []any
		for range 1 + g.rnd.IntN(3) {
			b := g.typ(depth+1, true)
			key := fmt.Sprint(kindOf(b))
			if seen[key] {
				continue
			}
			seen[key] = true
			bs = append(bs, b)
		}
		return bs
	default:
		return g.record(depth + 1)
	}
}

func kindOf(t any) string {
	switch x := t.(type) {
	case string:
		return x
	case map[string]any:
		if n, ok := x["name"]; ok {
			return n.(string)
		}
		if l, ok := x["logicalType"]; ok {
			return x["type"].(string) + "." + l.(string)
		}
		return x["type"].(string)
	}
	return "union"
}

func (g *schemaGen) record(depth int) map[string]any {
	fields := []any{}
	for i := range g.rnd.IntN(3) {
		fields = append(fields, map[string]any{"name": fmt.Sprintf("f%d", i), "type": g.typ(depth, false)})
	}
	return g.named(map[string]any{"type": "record", "fields": fields})
}

// envType is a type for event_id or subject_id.
func (g *schemaGen) envType() any {
	switch g.rnd.IntN(6) {
	case 0:
		return "string"
	case 1:
		return "bytes"
	case 2:
		return []any{"null", "string"}
	case 3:
		return []any{"null", g.named(map[string]any{"type": "enum", "symbols": []any{"A", "B"}})}
	case 4:
		return g.named(map[string]any{"type": "enum", "symbols": []any{"A", "B"}})
	}
	return g.typ(2, false)
}

func (g *schemaGen) writer() map[string]any {
	root := g.record(0)
	root["name"] = "Gen"
	root["namespace"] = []string{"", "gen.ns"}[g.rnd.IntN(2)]
	if root["namespace"] == "" {
		delete(root, "namespace")
	}
	fields := root["fields"].([]any)
	for _, env := range []string{"event_id", "subject_id"} {
		if g.rnd.IntN(6) != 0 {
			fields = append(fields, map[string]any{"name": env, "type": g.envType()})
		}
	}
	g.rnd.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	root["fields"] = fields
	return root
}

// deepCopy copies a JSON value.
func deepCopy(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// evolve returns a reader version of writer type t.
func (g *schemaGen) evolve(t any) any {
	out := g.evolve1(t)
	if _, isU := out.([]any); !isU && g.rnd.IntN(8) == 0 && kindOf(out) != "null" {
		return []any{"null", out} // a reader union around the writer's type
	}
	return out
}

func (g *schemaGen) evolve1(t any) any {
	switch x := t.(type) {
	case string:
		if g.rnd.IntN(3) != 0 {
			return x
		}
		switch x {
		case "int":
			return []string{"long", "float", "double"}[g.rnd.IntN(3)]
		case "long":
			return []string{"float", "double", "int"}[g.rnd.IntN(3)]
		case "float":
			return "double"
		case "string":
			return "bytes"
		case "bytes":
			return "string"
		}
		if g.rnd.IntN(2) == 0 {
			return []any{"null", x}
		}
		return x
	case []any:
		var out []any
		for _, b := range x {
			if g.rnd.IntN(5) == 0 {
				continue // branch removed
			}
			out = append(out, g.evolve(b))
		}
		seen := map[string]bool{}
		var dedup []any
		for _, b := range out {
			if _, isU := b.([]any); isU {
				continue
			}
			if k := kindOf(b); !seen[k] {
				seen[k] = true
				dedup = append(dedup, b)
			}
		}
		if len(dedup) == 0 || g.rnd.IntN(4) == 0 {
			if !seen["null"] {
				dedup = append(dedup, "null")
			}
		}
		return dedup
	case map[string]any:
		switch x["type"] {
		case "enum":
			syms := slices.Clone(x["symbols"].([]any))
			if g.rnd.IntN(2) == 0 {
				syms = append(syms, "Z")
			}
			if g.rnd.IntN(2) == 0 && len(syms) > 1 {
				syms = syms[1:]
			}
			x["symbols"] = syms
			if g.rnd.IntN(2) == 0 {
				x["default"] = syms[len(syms)-1]
			}
		case "array":
			x["items"] = g.evolve(x["items"])
		case "map":
			x["values"] = g.evolve(x["values"])
		case "record":
			out := []any{}
			for _, f := range x["fields"].([]any) {
				f := f.(map[string]any)
				if g.rnd.IntN(6) == 0 {
					continue // dropped
				}
				if g.rnd.IntN(6) == 0 {
					f["aliases"] = []any{f["name"]}
					f["name"] = f["name"].(string) + "_r"
				}
				f["type"] = g.evolve(f["type"])
				out = append(out, f)
			}
			if g.rnd.IntN(3) == 0 {
				out = append(out, map[string]any{"name": g.name(), "type": []any{"null", "string"}, "default": nil})
			}
			// The envelope fields a writer lacks, with reader defaults.
			for _, env := range []string{"event_id", "subject_id"} {
				if !slices.ContainsFunc(out, func(f any) bool { return f.(map[string]any)["name"] == env }) && g.rnd.IntN(2) == 0 {
					def := []any{map[string]any{"name": env, "type": "string", "default": "dflt"},
						map[string]any{"name": env, "type": []any{"null", "string"}, "default": nil},
						map[string]any{"name": env, "type": []any{"string", "null"}, "default": "d2"}}
					out = append(out, def[g.rnd.IntN(len(def))])
				}
			}
			if g.rnd.IntN(4) == 0 {
				if n, ok := x["name"].(string); ok && n != "Gen" {
					x["aliases"] = []any{n}
					x["name"] = n + "R"
				}
			}
			if g.rnd.IntN(5) == 0 {
				out = append(out, map[string]any{"name": g.name(), "type": "string"})
			}
			g.rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
			x["fields"] = out
		}
		return x
	}
	return t
}

func TestEnvelopeRandomSchemaPairs(t *testing.T) {
	t.Parallel()
	seed := uint64(21)
	if v, err := strconv.ParseUint(os.Getenv("SCHEMAGEN_SEED"), 10, 64); err == nil {
		seed = v
	}
	g := &schemaGen{rnd: rand.New(rand.NewPCG(seed, 22))}
	vg := &valueGen{rnd: rand.New(rand.NewPCG(seed, 24))}
	seen := map[string]int{}
	pairs, programs := 0, 0
	for range 500 {
		w := g.writer()
		wText, _ := json.Marshal(w)
		r := g.evolve(deepCopy(w))
		rText, _ := json.Marshal(r)
		cat, err := avrocodec.LoadCatalog(fstest.MapFS{"gen.v2.avsc": {Data: rText}})
		if err != nil {
			continue // an invalid reader
		}
		codec := avrocodec.New(cat, staticRegistry{1: string(wText), 2: string(wText)})
		ws, err := codec.WriterByID(t.Context(), 1)
		if err != nil {
			t.Logf("writer: %v", err)
			continue
		}
		pairs++
		if avrocodec.UsesProgram(codec, ws, codec.Catalog().Schemas()[0]) {
			programs++
		}
		for range 20 {
			v := vg.value(ws.Root(), 0).(map[string]any)
			b, err := ws.Codec().BinaryFromNative([]byte{0, 0, 0, 0, 1}, v)
			if err != nil {
				continue
			}
			seen[verdictCtx(t, codec, b, wText, rText)]++
			for range 5 {
				m := append([]byte{0, 0, 0, 0, 1}, mutate(vg.rnd, b[5:])...)
				seen[verdictCtx(t, codec, m, wText, rText)]++
			}
		}
	}
	t.Logf("%d pairs (%d with a program), outcomes %v", pairs, programs, seen)

}

func verdictCtx(t *testing.T, codec *avrocodec.Codec, data, w, r []byte) string {
	t.Helper()
	var out string
	ok := t.Run("pair", func(t *testing.T) {
		t.Helper()
		out = verdict(t, codec, data)
	})
	if !ok {
		t.Fatalf("writer %s\nreader %s", w, r)
	}
	return out
}
