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
// audit record is named in the doc of AuditRecord.reason, so that the
// compliance team's reference cannot drift from the code (it did:
// excluded_category was documented as category_excluded, issue 10).
func TestAuditReasonsDocumented(t *testing.T) {
	t.Parallel()
	codes := map[string]string{} // code -> where
	for _, src := range reasonSources {
		for code, where := range reasonConstants(t, src.dir, src.recurse, src.typed) {
			codes[code] = where
		}
	}
	for _, must := range []string{"granted", "never_asked", "excluded_category", "granted_with_exclusions", "redaction_failed"} {
		if _, ok := codes[must]; !ok {
			t.Fatalf("the scan found no constant for reason %s: is reasonSources still right? found %v", must, codes)
		}
	}
	doc := auditReasonDoc(t)
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
		t.Errorf("audit_record.avsc: the doc of field reason does not list %s\ndoc: %s", strings.Join(missing, ", "), doc)
	}
	if len(stale) > 0 {
		t.Errorf("audit_record.avsc: the doc of field reason lists %s, which no code writes", strings.Join(stale, ", "))
	}
}

var codeName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// documentedCodes reads the list in the reason doc: after "Codes: ",
// entries "code: meaning" separated by "; ".
func documentedCodes(t *testing.T, doc string) map[string]bool {
	t.Helper()
	_, list, ok := strings.Cut(doc, "Codes: ")
	if !ok {
		t.Fatalf("the doc of AuditRecord.reason has no \"Codes: \" list: %s", doc)
	}
	out := map[string]bool{}
	for _, entry := range strings.Split(list, "; ") {
		code, _, ok := strings.Cut(entry, ": ")
		if !ok || !codeName.MatchString(code) {
			t.Fatalf("the doc of AuditRecord.reason: entry %q is not \"code: meaning\"", entry)
		}
		out[code] = true
	}
	return out
}

func auditReasonDoc(t *testing.T) string {
	t.Helper()
	data, err := fs.ReadFile(schemas.FS, "audit_record.avsc")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Fields []struct {
			Name, Doc string
		}
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	for _, f := range rec.Fields {
		if f.Name == "reason" {
			return f.Doc
		}
	}
	t.Fatal("audit_record.avsc has no reason field")
	return ""
}

// reasonConstants returns the string constants named Reason* (of type typed,
// when set) declared by the non-test Go files in dir, by value, with the
// place they are declared.
func reasonConstants(t *testing.T, dir string, recurse bool, typed string) map[string]string {
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
					if !strings.HasPrefix(name.Name, "Reason") {
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
