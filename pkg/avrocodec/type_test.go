package avrocodec_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// modelSchema exercises every kind of the schema model: named types reused
// and referenced recursively, logical types goavro honours and one it
// ignores, aliases, enum and field defaults, annotations.
const modelSchema = `{
  "type": "record", "name": "Node", "namespace": "test.model", "aliases": ["OldNode"],
  "fields": [
    {"name": "id", "type": "string", "data_category": "user.id", "aliases": ["key"]},
    {"name": "uuid", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}, "default": 0},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
    {"name": "amount", "type": {"type": "fixed", "name": "Amount", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 4}},
    {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"], "default": "RED"}, "default": "GREEN"},
    {"name": "home", "type": ["null", {"type": "record", "name": "Address", "fields": [
      {"name": "city", "type": "string", "data_category": "user.contact.address.city"}
    ]}], "default": null},
    {"name": "work", "type": ["null", "Address"], "default": null},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["a"]},
    {"name": "scores", "type": {"type": "map", "values": "double"}, "default": {"x": 1.5}},
    {"name": "children", "type": {"type": "array", "items": "test.model.Node"}, "default": []},
    {"name": "parent", "type": ["null", "Node"], "default": null}
  ]
}`

func TestSchemaModel(t *testing.T) {
	t.Parallel()
	s := mustCodec(t, modelSchema)
	root := s.Root()
	if root == nil {
		t.Fatal("Root() = nil")
	}
	if root.Kind != avrocodec.KindRecord || root.Name != "test.model.Node" || root.Name != s.FullName {
		t.Fatalf("root = %s, want record test.model.Node", root)
	}
	if !slices.Equal(root.Aliases, []string{"test.model.OldNode"}) {
		t.Errorf("root aliases = %q, want the qualified alias", root.Aliases)
	}
	var names []string
	for _, f := range root.Fields {
		names = append(names, f.Name)
	}
	if want := []string{"id", "uuid", "at", "day", "price", "hash", "amount", "colour", "home", "work", "tags", "scores", "children", "parent"}; !slices.Equal(names, want) {
		t.Fatalf("fields = %q, want %q", names, want)
	}
	field := func(name string) *avrocodec.RecordField {
		t.Helper()
		f := root.Field(name)
		if f == nil {
			t.Fatalf("Field(%q) = nil", name)
		}
		return f
	}

	cases := []struct {
		field    string
		kind     avrocodec.Kind
		name     string
		logical  string
		prec     int
		scale    int
		size     int
		str      string
		unionKey string
		nullable bool
		category string
		aliases  []string
		def      any
		hasDef   bool
	}{
		{field: "id", kind: avrocodec.KindString, str: "string", unionKey: "string", category: "user.id", aliases: []string{"key"}},
		{field: "uuid", kind: avrocodec.KindString, str: "string", unionKey: "string"},
		{field: "at", kind: avrocodec.KindLong, logical: "timestamp-millis", str: "long (timestamp-millis)", unionKey: "long.timestamp-millis"},
		{field: "day", kind: avrocodec.KindInt, logical: "date", str: "int (date)", unionKey: "int.date", def: json.Number("0"), hasDef: true},
		{field: "price", kind: avrocodec.KindBytes, logical: "decimal", prec: 9, scale: 2, str: "bytes (decimal)", unionKey: "bytes.decimal"},
		{field: "hash", kind: avrocodec.KindFixed, name: "test.model.Hash", size: 4, str: "fixed test.model.Hash", unionKey: "test.model.Hash"},
		{field: "amount", kind: avrocodec.KindFixed, name: "test.model.Amount", logical: "decimal", prec: 18, scale: 4, size: 8, str: "fixed test.model.Amount", unionKey: "test.model.Amount"},
		{field: "colour", kind: avrocodec.KindEnum, name: "test.model.Colour", str: "enum test.model.Colour", unionKey: "test.model.Colour", def: "GREEN", hasDef: true},
		{field: "home", kind: avrocodec.KindUnion, str: "one of null, test.model.Address", unionKey: "union", nullable: true, hasDef: true},
		{field: "tags", kind: avrocodec.KindArray, str: "array", unionKey: "array", def: []any{"a"}, hasDef: true},
		{field: "scores", kind: avrocodec.KindMap, str: "map", unionKey: "map", def: map[string]any{"x": json.Number("1.5")}, hasDef: true},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			t.Parallel()
			f := field(tc.field)
			ty := f.Type
			if ty.Kind != tc.kind || ty.Name != tc.name || ty.Logical != tc.logical ||
				ty.Precision != tc.prec || ty.Scale != tc.scale || ty.Size != tc.size {
				t.Errorf("type = %+v, want kind %s name %q logical %q decimal(%d,%d) size %d",
					*ty, tc.kind, tc.name, tc.logical, tc.prec, tc.scale, tc.size)
			}
			if got := ty.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if got := ty.UnionKey(); got != tc.unionKey {
				t.Errorf("UnionKey() = %q, want %q", got, tc.unionKey)
			}
			if got := ty.Nullable(); got != tc.nullable {
				t.Errorf("Nullable() = %v, want %v", got, tc.nullable)
			}
			if f.Category != tc.category || !slices.Equal(f.Aliases, tc.aliases) {
				t.Errorf("category %q aliases %q, want %q %q", f.Category, f.Aliases, tc.category, tc.aliases)
			}
			if f.HasDefault != tc.hasDef || !reflect.DeepEqual(f.Default, tc.def) {
				t.Errorf("default = %#v (%v), want %#v (%v)", f.Default, f.HasDefault, tc.def, tc.hasDef)
			}
		})
	}

	t.Run("enum", func(t *testing.T) {
		t.Parallel()
		e := field("colour").Type
		if !slices.Equal(e.Symbols, []string{"RED", "GREEN"}) || !e.HasEnumDefault || e.EnumDefault != "RED" {
			t.Errorf("enum = %+v, want symbols RED GREEN, default RED", *e)
		}
		if !e.HasSymbol("GREEN") || e.HasSymbol("BLUE") {
			t.Error("HasSymbol disagrees with Symbols")
		}
	})
	t.Run("named types are shared", func(t *testing.T) {
		t.Parallel()
		home, work := field("home").Type, field("work").Type
		if home == work {
			t.Fatal("two union types are one *Type; only named types are shared")
		}
		hi, wi := home.BranchIndex("test.model.Address"), work.BranchIndex("test.model.Address")
		if hi != 1 || wi != 1 {
			t.Fatalf("BranchIndex = %d, %d, want 1, 1", hi, wi)
		}
		if home.Branches[hi] != work.Branches[wi] {
			t.Error("the two references to Address are different *Type")
		}
		if home.BranchIndex("string") != -1 || root.BranchIndex("null") != -1 {
			t.Error("BranchIndex found a branch that is not there")
		}
	})
	t.Run("recursive types are cycles", func(t *testing.T) {
		t.Parallel()
		if field("children").Type.Items != root {
			t.Error("array items of Node are not the root *Type")
		}
		parent := field("parent").Type
		if i := parent.BranchIndex("test.model.Node"); i < 0 || parent.Branches[i] != root {
			t.Error("the parent branch is not the root *Type")
		}
		if field("scores").Type.Values.Kind != avrocodec.KindDouble {
			t.Error("map values are not double")
		}
	})
	t.Run("field lookup", func(t *testing.T) {
		t.Parallel()
		if root.Field("key") != nil || root.Field("nope") != nil {
			t.Error("Field found a field by alias or a missing one")
		}
		if field("tags").Type.Field("id") != nil {
			t.Error("Field on an array found a field")
		}
	})
	t.Run("walk agrees with Fields", func(t *testing.T) {
		t.Parallel()
		// A walker over the graph tracks the records on its route, as the
		// Type documentation asks; it then lists what Schema.Fields lists.
		var paths []string
		seen := map[*avrocodec.Type]bool{}
		var walk func(ty *avrocodec.Type, path string)
		walk = func(ty *avrocodec.Type, path string) {
			switch ty.Kind {
			case avrocodec.KindRecord:
				if seen[ty] {
					return
				}
				seen[ty] = true
				defer delete(seen, ty)
				for _, f := range ty.Fields {
					p := f.Name
					if path != "" {
						p = path + "." + f.Name
					}
					paths = append(paths, p)
					walk(f.Type, p)
				}
			case avrocodec.KindUnion:
				for _, b := range ty.Branches {
					walk(b, path)
				}
			case avrocodec.KindArray:
				walk(ty.Items, path+"[]")
			case avrocodec.KindMap:
				walk(ty.Values, path+"{}")
			}
		}
		walk(root, "")
		var want []string
		for _, fi := range s.Fields {
			want = append(want, fi.Path)
		}
		if !slices.Equal(paths, want) {
			t.Errorf("walked paths = %q, want Schema.Fields %q", paths, want)
		}
	})
}

// TestSchemaModelCatalog checks that every catalog schema has a model whose
// root agrees with the Schema.
func TestSchemaModelCatalog(t *testing.T) {
	t.Parallel()
	for _, s := range loadCatalog(t).Schemas() {
		root := s.Root()
		if root == nil || root.Kind != avrocodec.KindRecord || root.Name != s.FullName {
			t.Errorf("%s v%d: Root() = %v, want record %s", s.FullName, s.Version, root, s.FullName)
		}
	}
}
