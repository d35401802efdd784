package schemas_test

import (
	"encoding/json"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/schemas"
	"github.com/linkedin/goavro/v2"
)

// The resolution of every versioned pair (old data read as new, new data
// read as old) is checked in pkg/avrocodec (TestCatalogVersionsCompatible),
// which implements Avro schema resolution; this module stays dependency-light.

var fileName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.v[1-9][0-9]*)?\.avsc$`)

var category = regexp.MustCompile(`^user(\.[a-z_]+)*$`)

func TestSchemasParse(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(schemas.FS, "*.avsc")
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files embedded: %v", err)
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			if !fileName.MatchString(file) {
				t.Errorf("file name %s does not follow <snake_name>[.vN].avsc", file)
			}
			data, err := fs.ReadFile(schemas.FS, file)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := goavro.NewCodec(string(data)); err != nil {
				t.Fatalf("goavro rejects %s: %v", file, err)
			}
			var root map[string]any
			if err := json.Unmarshal(data, &root); err != nil {
				t.Fatal(err)
			}
			if root["type"] != "record" || root["doc"] == nil {
				t.Errorf("top level must be a documented record")
			}
			ns, _ := root["namespace"].(string)
			if !strings.HasPrefix(ns, "consentgate.") {
				t.Errorf("namespace %q is not under consentgate.", ns)
			}
			checkCategories(t, root, "")
			if ns == "consentgate.events" {
				checkEnvelope(t, root)
			}
		})
	}
}

// checkEnvelope asserts the common envelope: event_id, subject_id
// (annotated user.id), occurred_at (timestamp-millis), in this order.
func checkEnvelope(t *testing.T, root map[string]any) {
	t.Helper()
	fields, _ := root["fields"].([]any)
	want := []string{"event_id", "subject_id", "occurred_at"}
	if len(fields) < len(want) {
		t.Fatalf("event schema has fewer fields than the envelope")
	}
	for i, name := range want {
		f, _ := fields[i].(map[string]any)
		if f["name"] != name {
			t.Fatalf("field %d is %v, want %s", i, f["name"], name)
		}
	}
	if f := fields[1].(map[string]any); f["data_category"] != "user.id" || f["type"] != "string" {
		t.Errorf("subject_id must be a string annotated user.id")
	}
	if f := fields[0].(map[string]any); f["type"] != "string" {
		t.Errorf("event_id must be a string")
	}
	ts, _ := fields[2].(map[string]any)["type"].(map[string]any)
	if ts["type"] != "long" || ts["logicalType"] != "timestamp-millis" {
		t.Errorf("occurred_at must be a timestamp-millis long")
	}
}

// checkCategories walks every field, nested ones included, and checks the
// data_category syntax.
func checkCategories(t *testing.T, v any, path string) {
	t.Helper()
	switch x := v.(type) {
	case []any:
		for _, item := range x {
			checkCategories(t, item, path)
		}
	case map[string]any:
		if fields, ok := x["fields"].([]any); ok {
			for _, f := range fields {
				fm, _ := f.(map[string]any)
				name, _ := fm["name"].(string)
				p := name
				if path != "" {
					p = path + "." + name
				}
				if c, ok := fm["data_category"]; ok {
					s, _ := c.(string)
					if !category.MatchString(s) {
						t.Errorf("field %s: data_category %q is not a dotted user.* category", p, c)
					}
				}
				checkCategories(t, fm["type"], p)
			}
		}
		if items, ok := x["items"]; ok {
			checkCategories(t, items, path+"[]")
		}
		if values, ok := x["values"]; ok {
			checkCategories(t, values, path+"{}")
		}
		if typ, ok := x["type"].(map[string]any); ok {
			checkCategories(t, typ, path)
		}
		if typ, ok := x["type"].([]any); ok {
			checkCategories(t, typ, path)
		}
	}
}
