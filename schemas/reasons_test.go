package schemas_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/schemas"
)

// reasonSources are the packages whose constants are audit reason codes,
// relative to this folder: the consent verdict reasons (constants of type
// Reason in pkg/consent), the decision reasons (constants named Reason* in
// pkg/decision) and the enforcer's own (constants named Reason* anywhere in
// services/enforcer).
var reasonSources = []struct {
	dir     string
	recurse bool
	typed   string // when set, only constants declared with this type
}{
	{dir: "../pkg/consent", typed: "Reason"},
	{dir: "../pkg/decision"},
	{dir: "../services/enforcer", recurse: true},
}

// TestAuditReasonsDocumented: every reason code the code can write into an
// audit record is named in the doc of AuditRecord.decisions[].reason (of the
// latest AuditRecord version), so that the compliance team's reference
// cannot drift from the code (it did: excluded_category was documented as
// category_excluded, issue 10).
func TestAuditReasonsDocumented(t *testing.T) {
	t.Parallel()
	codes := map[string]string{} // code -> where
	for _, src := range reasonSources {
		for code, where := range prefixedConstants(t, src.dir, "Reason", src.recurse, src.typed) {
			codes[code] = where
		}
	}
	for _, must := range []string{"granted", "never_asked", "excluded_category", "granted_with_exclusions", "redaction_failed"} {
		if _, ok := codes[must]; !ok {
			t.Fatalf("the scan found no constant for reason %s: is reasonSources still right? found %v", must, codes)
		}
	}
	checkDocumented(t, "decisions[].reason", codes, auditFieldDoc(t, "decisions", "reason"))
}

// TestAuditDeadLetterReasonsDocumented: every dead-letter reason the
// enforcer writes (its constants named DeadLetter*, which go both into the
// dead letter's consentgate.dlq.reason header and into the DEAD_LETTERED
// audit record) is named in the doc of AuditRecord.dead_letter_reason, and
// the doc names no other.
func TestAuditDeadLetterReasonsDocumented(t *testing.T) {
	t.Parallel()
	codes := prefixedConstants(t, "../services/enforcer", "DeadLetter", true, "")
	for _, must := range []string{"undecodable", "missing_subject_id", "missing_event_id"} {
		if _, ok := codes[must]; !ok {
			t.Fatalf("the scan found no constant for dead-letter reason %s: is the scan still right? found %v", must, codes)
		}
	}
	checkDocumented(t, "dead_letter_reason", codes, auditFieldDoc(t, "dead_letter_reason"))
}

// checkDocumented compares the codes the code writes with the "Codes: "
// list of doc, both ways.
func checkDocumented(t *testing.T, field string, codes map[string]string, doc string) {
	t.Helper()
	documented := documentedCodes(t, doc)
	var missing, stale []string
	for code, where := range codes {
		if !documented[code] {
			missing = append(missing, code+" ("+where+")")
		}
	}
	for code := range documented {
		if _, ok := codes[code]; !ok {
			stale = append(stale, code)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("%s: the doc of field %s does not list %s\ndoc: %s", latestAudit(t), field, strings.Join(missing, ", "), doc)
	}
	if len(stale) > 0 {
		t.Errorf("%s: the doc of field %s lists %s, which no code writes", latestAudit(t), field, strings.Join(stale, ", "))
	}
}

var codeName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// documentedCodes reads the list in a reason doc: after "Codes: ",
// entries "code: meaning" separated by "; ".
func documentedCodes(t *testing.T, doc string) map[string]bool {
	t.Helper()
	_, list, ok := strings.Cut(doc, "Codes: ")
	if !ok {
		t.Fatalf("the doc has no \"Codes: \" list: %s", doc)
	}
	out := map[string]bool{}
	for _, entry := range strings.Split(list, "; ") {
		code, _, ok := strings.Cut(entry, ": ")
		if !ok || !codeName.MatchString(code) {
			t.Fatalf("reason doc: entry %q is not \"code: meaning\"", entry)
		}
		out[code] = true
	}
	return out
}

var auditFile = regexp.MustCompile(`^audit_record(\.v([1-9][0-9]*))?\.avsc$`)

// latestAudit returns the file of the highest AuditRecord version, the one
// the enforcer writes (a file without .vN is version 1).
func latestAudit(t *testing.T) string {
	t.Helper()
	files, err := fs.Glob(schemas.FS, "audit_record*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	best, bestV := "", 0
	for _, f := range files {
		m := auditFile.FindStringSubmatch(f)
		if m == nil {
			continue
		}
		v := 1
		if m[2] != "" {
			v, _ = strconv.Atoi(m[2])
		}
		if v > bestV {
			best, bestV = f, v
		}
	}
	if best == "" {
		t.Fatalf("no audit_record schema among %v", files)
	}
	return best
}

type avroField struct {
	Name string
	Doc  string
	Type json.RawMessage
}

// auditFieldDoc returns the doc of a field of the latest AuditRecord,
// following path through fields whose type is an array of records (or a
// record).
func auditFieldDoc(t *testing.T, path ...string) string {
	t.Helper()
	file := latestAudit(t)
	data, err := fs.ReadFile(schemas.FS, file)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Fields []avroField }
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	fields := rec.Fields
	for i, name := range path {
		var f *avroField
		for j := range fields {
			if fields[j].Name == name {
				f = &fields[j]
			}
		}
		if f == nil {
			t.Fatalf("%s has no field %s", file, strings.Join(path[:i+1], "."))
		}
		if i == len(path)-1 {
			return f.Doc
		}
		var typ struct {
			Type   string
			Items  json.RawMessage
			Fields []avroField
		}
		if err := json.Unmarshal(f.Type, &typ); err != nil {
			t.Fatalf("%s: field %s is not a record or an array of records: %v", file, name, err)
		}
		if typ.Type == "array" {
			if err := json.Unmarshal(typ.Items, &typ); err != nil {
				t.Fatalf("%s: the items of field %s are not a record: %v", file, name, err)
			}
		}
		fields = typ.Fields
	}
	return ""
}

// prefixedConstants returns the string constants whose names start with
// prefix (of type typed, when set) declared by the non-test Go files in dir,
// by value, with the place they are declared.
func prefixedConstants(t *testing.T, dir, prefix string, recurse bool, typed string) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (!recurse || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if typed != "" {
					if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typed {
						continue
					}
				}
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, prefix) {
						continue
					}
					where := fset.Position(name.Pos()).String() + " " + name.Name
					if i >= len(vs.Values) {
						t.Fatalf("%s: no value to read", where)
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: the value is not a string literal; teach this test to read it", where)
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					out[v] = where
				}
			}
		}
		return nil
	})
	if err != nil {
		if os.IsNotExist(err) {
			t.Fatalf("%s not found: run the test from a checkout of the whole repository", dir)
		}
		t.Fatal(err)
	}
	return out
}
