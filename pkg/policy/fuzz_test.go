package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, that it returns either a
// policy or problems (never both, never neither), and that every problem
// names the source.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "example.yaml")); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		minimal,
		"",
		"purposes:\n  - &p\n    id: a\n  - *p\n",
		"a: &a [*a]\n",
		"{purposes: [{id: a}], streams: [{purposes: [a]}]}",
		minimal + "    treatments:\n      - category: user.*\n        action: keep\n      - field: a[].b\n        action: mask\n",
		minimal + "    treatments:\n      - category: user.contact.*\n        action: encrypt\n        encryption: deterministic\n      - field: a\n        action: mask\n        encryption: randomised\n    default_treatment: encrypt\n",
		"purposes:\n  - id: a\n    legal_bases: [CONSENT\n",
		"--- \n---\n",
		"\xff\x00",
	} {
		f.Add([]byte(s))
	}
	const source = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, source)
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse returned policy %v and error %v", p, err)
		}
		if err == nil {
			if len(p.Purposes) == 0 || len(p.Streams) == 0 || p.Version == "" {
				t.Fatalf("valid policy without purposes, streams or version: %+v", p)
			}
			return
		}
		probs := Problems(err)
		if len(probs) == 0 {
			t.Fatalf("error without problems: %v", err)
		}
		for _, pe := range probs {
			if pe.Source != source || pe.Line < 1 || pe.Column < 1 || !strings.HasPrefix(pe.Error(), source+":") {
				t.Fatalf("problem without source or position: %q", pe.Error())
			}
		}
	})
}
