package enforce

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/schemaregistry/registrytest"
	"github.com/consentgate/consentgate/pkg/shred"
)

// The property test of this file draws random pairs of writer and reader
// schemas (nested records, unions of records whose fields share names,
// arrays and maps of records, recursive records, fields only one version
// has, renamed fields with aliases on either side, named types in another
// namespace, annotations in either version), values unique per field and
// per map key, and grants with random exclusions; it runs them through
// Decide and Treat with the real codec and checks the published bytes
// against a model: a value is published only when every field on its way
// is one the reader has (or the bytes are forwarded), none has an excluded
// category in either version, and, on a stream with
// unannotated_fields: remove, every one is annotated in some version.

type gKind int

const (
	gLeaf gKind = iota
	gRecord
	gUnion // two records with the same field names
	gArray // of records
	gMap   // of records
	gRecursive
)

type gField struct {
	wName, rName  string // rName differs when renamed (alias on one side)
	aliasOnReader bool
	inW, inR      bool
	wCat, rCat    string
	kind          gKind
	rec           *gRec    // record, array, map, recursive: the record type
	branches      [2]*gRec // union
}

type gRec struct {
	name         string
	wNS, rNS     string
	fields       []*gField
	recursiveRef bool // the record's last field is "next": ["null", itself]
}

type gen struct {
	r     *rand.Rand
	n     int
	cats  []string
	depth int
}

func (g *gen) cat() string {
	if g.r.IntN(2) == 0 {
		return ""
	}
	return g.cats[g.r.IntN(len(g.cats))]
}

func (g *gen) record(depth int) *gRec {
	g.n++
	rec := &gRec{name: fmt.Sprintf("R%d", g.n), wNS: "ns.w", rNS: "ns.w"}
	if g.r.IntN(3) == 0 {
		rec.rNS = "ns.r" // Avro matches named types by their unqualified name
	}
	for i := range 1 + g.r.IntN(3) {
		rec.fields = append(rec.fields, g.field(depth, fmt.Sprintf("f%d", i)))
	}
	return rec
}

func (g *gen) field(depth int, name string) *gField {
	f := &gField{wName: name, rName: name, inW: true, inR: true, wCat: g.cat(), rCat: g.cat()}
	switch g.r.IntN(8) {
	case 0:
		f.inR = false
	case 1:
		f.inW = false
	case 2:
		f.rName = name + "_renamed"
		f.aliasOnReader = g.r.IntN(2) == 0
	}
	if depth < 3 {
		switch g.r.IntN(7) {
		case 1:
			f.kind, f.rec = gRecord, g.record(depth+1)
		case 2:
			f.kind = gUnion
			a, b := g.record(depth+1), g.record(depth+1)
			b.fields = nil
			for _, af := range a.fields { // same names, other annotations
				bf := *af
				bf.wCat, bf.rCat = g.cat(), g.cat()
				bf.kind, bf.rec = gLeaf, nil
				b.fields = append(b.fields, &bf)
			}
			f.branches = [2]*gRec{a, b}
		case 3:
			f.kind, f.rec = gArray, g.record(depth+1)
		case 4:
			f.kind, f.rec = gMap, g.record(depth+1)
		case 5:
			f.kind, f.rec = gRecursive, g.record(depth+1)
			f.rec.recursiveRef = true
		}
	}
	return f
}

// schemaJSON returns the record's schema for one side.
func (rec *gRec) schemaJSON(reader bool, defined map[*gRec]bool) any {
	ns := rec.wNS
	if reader {
		ns = rec.rNS
	}
	full := ns + "." + rec.name
	if defined[rec] {
		return full
	}
	defined[rec] = true
	fields := []any{}
	for _, f := range rec.fields {
		if (reader && !f.inR) || (!reader && !f.inW) {
			continue
		}
		name, c := f.wName, f.wCat
		m := map[string]any{}
		if reader {
			name, c = f.rName, f.rCat
			if f.rName != f.wName && f.aliasOnReader {
				m["aliases"] = []string{f.wName}
			}
		} else if f.rName != f.wName && !f.aliasOnReader {
			m["aliases"] = []string{f.rName}
		}
		m["name"], m["default"] = name, nil
		if c != "" {
			m["data_category"] = c
		}
		var t any
		switch f.kind {
		case gLeaf:
			t = "string"
		case gRecord, gRecursive:
			t = f.rec.schemaJSON(reader, defined)
		case gUnion:
			t = []any{"null", f.branches[0].schemaJSON(reader, defined), f.branches[1].schemaJSON(reader, defined)}
		case gArray:
			t = map[string]any{"type": "array", "items": f.rec.schemaJSON(reader, defined)}
		case gMap:
			t = map[string]any{"type": "map", "values": f.rec.schemaJSON(reader, defined)}
		}
		if u, ok := t.([]any); ok {
			m["type"] = u
		} else {
			m["type"] = []any{"null", t}
		}
		fields = append(fields, m)
	}
	if rec.recursiveRef {
		fields = append(fields, map[string]any{"name": "next", "type": []any{"null", full}, "default": nil})
	}
	return map[string]any{"type": "record", "name": rec.name, "namespace": ns, "fields": fields}
}

// secret is a value in the event with the fields on its way.
type secret struct {
	value string
	path  []*gField
}

func (g *gen) value(rec *gRec, path []*gField, out *[]secret, depth int) map[string]any {
	v := map[string]any{}
	for _, f := range rec.fields {
		if !f.inW || g.r.IntN(5) == 0 {
			continue // absent: null (every field is nullable)
		}
		p := append(append([]*gField(nil), path...), f)
		g.n++
		var x any
		switch f.kind {
		case gLeaf:
			s := fmt.Sprintf("SECRET-%05d-x", g.n)
			*out = append(*out, secret{s, p})
			x = map[string]any{"string": s}
		case gRecord:
			x = map[string]any{rec2name(f.rec): g.value(f.rec, p, out, depth+1)}
		case gRecursive:
			x = map[string]any{rec2name(f.rec): g.chain(f.rec, p, out, 1+g.r.IntN(3))}
		case gUnion:
			b := f.branches[g.r.IntN(2)]
			x = map[string]any{rec2name(b): g.value(b, p, out, depth+1)}
		case gArray:
			var arr []any
			for range 1 + g.r.IntN(2) {
				arr = append(arr, g.value(f.rec, p, out, depth+1))
			}
			x = map[string]any{"array": arr}
		case gMap:
			m := map[string]any{}
			for range 1 + g.r.IntN(2) {
				g.n++
				k := fmt.Sprintf("MAPKEY-%05d-x", g.n)
				*out = append(*out, secret{k, p})
				m[k] = g.value(f.rec, p, out, depth+1)
			}
			x = map[string]any{"map": m}
		}
		v[f.wName] = x
	}
	return v
}

// chain is a recursive record n levels deep; the "next" fields are on the
// way of the values below.
func (g *gen) chain(rec *gRec, path []*gField, out *[]secret, n int) map[string]any {
	v := g.value(rec, path, out, 9)
	if n > 1 {
		next := &gField{wName: "next", rName: "next", inW: true, inR: true, kind: gRecursive}
		v["next"] = map[string]any{rec2name(rec): g.chain(rec, append(append([]*gField(nil), path...), next), out, n-1)}
	} else {
		v["next"] = nil
	}
	return v
}

func rec2name(rec *gRec) string { return rec.wNS + "." + rec.name }

// stepsIn reports whether the writer schema has a field the plan must
// change (an excluded category, or unannotated under remove).
func stepsIn(rec *gRec, inReader bool, x decision.Exclusions, unannotatedRemove bool, seen map[*gRec]bool) bool {
	if seen[rec] {
		return false
	}
	seen[rec] = true
	for _, f := range rec.fields {
		if !f.inW {
			continue
		}
		cats := []string{}
		if f.wCat != "" {
			cats = append(cats, f.wCat)
		}
		if inReader && f.inR && f.rCat != "" {
			cats = append(cats, f.rCat)
		}
		if _, ok := x.CoversAny(cats); ok {
			return true
		}
		if unannotatedRemove && len(cats) == 0 {
			return true
		}
		for _, r := range []*gRec{f.rec, f.branches[0], f.branches[1]} {
			if r != nil && stepsIn(r, inReader && f.inR, x, unannotatedRemove, seen) {
				return true
			}
		}
	}
	if rec.recursiveRef && unannotatedRemove {
		return true // "next" is unannotated
	}
	return false
}

// encIn reports whether the writer schema has a field that an encrypt
// rule for category pattern enc ("" none) encrypts: one of its categories
// (the writer's, and the reader's when the reader has it) matches.
func encIn(rec *gRec, inReader bool, enc string, seen map[*gRec]bool) bool {
	if enc == "" || seen[rec] {
		return false
	}
	seen[rec] = true
	for _, f := range rec.fields {
		if !f.inW {
			continue
		}
		if matchRule(enc, f.wCat) || (inReader && f.inR && matchRule(enc, f.rCat)) {
			return true
		}
		for _, r := range []*gRec{f.rec, f.branches[0], f.branches[1]} {
			if r != nil && encIn(r, inReader && f.inR, enc, seen) {
				return true
			}
		}
	}
	return false
}

func TestTreatPublishesOnlyWhatTheModelAllows(t *testing.T) {
	t.Parallel()
	red, err := redact.New([]byte("0123456789abcdef-property-key"))
	if err != nil {
		t.Fatal(err)
	}
	cats := []string{"user.health", "user.contact.email", "user.contact.address", "user.contact.address.city", "user.device.id"}
	patterns := []string{"user.health", "user.contact.*", "user.contact.address.city", "user.contact.address", "user.device", "user.contact.email"}
	reg := registrytest.New()
	client := schemaregistry.New(registrytest.Start(t, reg), nil)
	r := rand.New(rand.NewPCG(10, 0))
	dk, err := shred.NewDataKey("s", [16]byte{1}, 1, time.Now(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	const cases = 400
	for i := range cases {
		g := &gen{r: r, cats: cats}
		root := g.record(0)
		root.name, root.wNS, root.rNS = "Ev", "ns.top", "ns.top"
		// Different structures, hence fingerprints, for the two versions.
		root.fields = append(root.fields, &gField{wName: "wpad", rName: "wpad", inW: true, wCat: "user.device.id"})
		wj, _ := json.Marshal(root.schemaJSON(false, map[*gRec]bool{}))
		rj, _ := json.Marshal(root.schemaJSON(true, map[*gRec]bool{}))
		cat, err := avrocodec.LoadCatalog(fstest.MapFS{"ev.v1.avsc": {Data: wj}, "ev.v2.avsc": {Data: rj}})
		if err != nil {
			t.Fatalf("case %d: %v\nwriter %s\nreader %s", i, err, wj, rj)
		}
		codec := avrocodec.New(cat, client)
		writer, _ := cat.Version("ns.top.Ev", 1)
		var secrets []secret
		val := g.value(root, nil, &secrets, 0)
		// Half the cases in the Confluent framing, the writer from the
		// registry: a re-encoded copy is resolved back into it.
		confluent := i%2 == 1
		var data []byte
		if confluent {
			text := string(wj)
			if i%4 == 3 { // a registry that strips custom properties
				text = strings.ReplaceAll(text, `"data_category":`, `"x_stripped":`)
			}
			id := reg.Add(fmt.Sprintf("case-%d-value", i), text)
			data, err = codec.EncodeConfluent(context.Background(), id, val)
		} else {
			data, err = writer.EncodeSingle(val)
		}
		if err != nil {
			t.Fatalf("case %d: encode: %v\nwriter %s", i, err, wj)
		}
		rec, err := codec.Decode(context.Background(), data)
		if err != nil {
			t.Fatalf("case %d: decode: %v\nwriter %s\nreader %s", i, err, wj, rj)
		}
		var excluded []string
		for range r.IntN(3) {
			excluded = append(excluded, patterns[r.IntN(len(patterns))])
		}
		unannotated := []string{"keep", "remove"}[r.IntN(2)]
		// Half the cases encrypt the fields of a category pattern: their
		// values (inside an encrypted field every value is encrypted or
		// removed) are then published as ciphertexts, never in clear.
		enc, treatments := "", ""
		if r.IntN(2) == 0 {
			enc = []string{"user.health", "user.contact.*", "user.contact.address", "user.device", "*"}[r.IntN(5)]
			treatments = fmt.Sprintf("    treatments:\n      - category: %q\n        action: encrypt\n", enc)
			if r.IntN(2) == 0 {
				treatments += "        encryption: deterministic\n"
			}
		}
		pol, err := policy.Parse([]byte("purposes:\n  - id: p\nstreams:\n  - topic: out\n    purposes: [p]\n    unannotated_fields: "+unannotated+"\n"+treatments), "p.yaml")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		state := &consent.State{SubjectID: "s", Purposes: map[string]consent.PurposeState{"p": {
			Status: consent.StatusGranted, ChangeID: "g", CapturedAt: now.Add(-time.Hour), LegalBasis: consent.BasisConsent, ExcludedCategories: excluded}}}
		s := pol.Streams[0]
		d := decision.Decide(pol, s, decision.Input{Schema: rec.Schema.FullName, Fields: decision.FieldsOf(rec.Writer(), rec.Schema).Fields, State: state, Now: now})
		x := decision.NewExclusions(excluded)
		removeUnannotated := unannotated == "remove"
		wantSteps := stepsIn(root, true, x, removeUnannotated, map[*gRec]bool{}) || encIn(root, true, enc, map[*gRec]bool{})
		if d.Outcome == decision.Dropped {
			t.Fatalf("case %d: dropped (%s)", i, d.Reason)
		}
		if got := len(d.Plan) > 0; got != wantSteps {
			t.Errorf("case %d: plan %v, model says steps=%v\nwriter %s\nreader %s\nexcluded %v, unannotated %s", i, d.Plan.Paths(), wantSteps, wj, rj, excluded, unannotated)
			continue
		}
		p, err := TreatWith(context.Background(), codec, red, rec, data, s, d, dk)
		if err != nil {
			t.Fatalf("case %d: treat: %v", i, err)
		}
		// What the copy's ciphertexts hold (map keys included).
		plain := map[string]bool{}
		if !p.Forward {
			if out, err := codec.Decode(context.Background(), p.Bytes); err == nil {
				collectPlain(out.Value, dk, plain)
			}
		}
		for _, sc := range secrets {
			allowed, inReader, encrypted := true, true, false
			for _, f := range sc.path {
				inReader = inReader && f.inR
				c := []string{}
				if f.wCat != "" {
					c = append(c, f.wCat)
				}
				if inReader && f.rCat != "" {
					c = append(c, f.rCat)
				}
				for _, cc := range c {
					encrypted = encrypted || (enc != "" && matchRule(enc, cc))
				}
				_, excl := x.CoversAny(c)
				if excl || (!f.inR && !p.Forward) || (removeUnannotated && len(c) == 0) {
					allowed = false
				}
			}
			if allowed && encrypted && !p.Forward {
				allowed = false // published encrypted, not in clear
				if !plain[sc.value] {
					t.Errorf("case %d: a value to encrypt (pattern %q) is in no ciphertext of the copy\nwriter %s\nreader %s", i, enc, wj, rj)
				}
			}
			if got := bytes.Contains(p.Bytes, []byte(sc.value)); got != allowed {
				var way []string
				for _, f := range sc.path {
					way = append(way, fmt.Sprintf("%s(w=%q r=%q inR=%v)", f.wName, f.wCat, f.rCat, f.inR))
				}
				t.Errorf("case %d: value at %v published in clear=%v, model says %v (excluded %v, unannotated %s, encrypt %q, forward %v)\nwriter %s\nreader %s",
					i, way, got, allowed, excluded, unannotated, enc, p.Forward, wj, rj)
			}
		}
		if !p.Forward {
			out, err := codec.Decode(context.Background(), p.Bytes)
			switch {
			case err != nil:
				t.Errorf("case %d: the published copy does not decode: %v", i, err)
			case confluent && out.WriterID != rec.WriterID:
				t.Errorf("case %d: the copy names schema id %d, the input %d", i, out.WriterID, rec.WriterID)
			}
		}
	}
}

// collectPlain adds to out what every ciphertext (string, map key) in
// native value v decrypts to under k.
func collectPlain(v any, k *shred.DataKey, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for key, val := range x {
			if shred.IsCiphertext(key) {
				if d, err := k.DecryptString(key); err == nil {
					out[d] = true
				}
			}
			collectPlain(val, k, out)
		}
	case []any:
		for _, val := range x {
			collectPlain(val, k, out)
		}
	case string:
		if shred.IsCiphertext(x) {
			if d, err := k.DecryptString(x); err == nil {
				out[d] = true
			}
		}
	}
}
