package ropa

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	catOnce sync.Once
	cat     *avrocodec.Catalog
	catErr  error
)

func catalog(t testing.TB) *avrocodec.Catalog {
	t.Helper()
	catOnce.Do(func() { cat, catErr = avrocodec.LoadCatalog(schemas.FS) })
	if catErr != nil {
		t.Fatalf("load catalog: %v", catErr)
	}
	return cat
}

// devPolicy is the text of deploy/policy.yaml.
func devPolicy(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func build(t testing.TB, text []byte) *Record {
	t.Helper()
	pol, err := policy.Parse(text, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Build(pol, catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func jsonOf(t testing.TB, rec *Record) []byte {
	t.Helper()
	out, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -update writes it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update if intended); got:\n%s", path, got)
	}
}

// The record of the dev stack's policy (deploy/policy.yaml; after editing it,
// run go test -update and read the diff), in both forms.
func TestGoldenDevPolicy(t *testing.T) {
	rec := build(t, devPolicy(t))
	golden(t, "deploy_policy.md", []byte(rec.Markdown()))
	golden(t, "deploy_policy.json", jsonOf(t, rec))
	// Deterministic: a second build gives the same bytes.
	again := build(t, devPolicy(t))
	if again.Markdown() != rec.Markdown() || !bytes.Equal(jsonOf(t, again), jsonOf(t, rec)) {
		t.Error("two builds of the same policy differ")
	}
}

// A treatment change in the policy changes the row of that category on that
// stream, and nothing else but the policy version.
func TestTreatmentChangeChangesItsRow(t *testing.T) {
	base := devPolicy(t)
	before := strings.Split(build(t, base).Markdown(), "\n")
	cases := []struct {
		name, old, new string
		wantRow        string // the changed row, after the change
	}{
		{"ip address masked", "- category: user.device.ip_address\n        action: truncate_ip\n", "- category: user.device.ip_address\n        action: mask\n",
			"| user.device.ip_address | EmailEngagement v1: ip_address, PageView v1-v2: ip_address, Purchase v1: ip_address | as is | `mask` | removed |"},
		{"subject id removed", "- category: user.id\n        action: pseudonymise\n", "- category: user.id\n        action: remove\n",
			"| user.id | EmailEngagement v1: subject_id, PageView v1-v2: subject_id, Purchase v1: subject_id | as is | removed | removed |"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(base, []byte(tc.old)) {
				t.Fatalf("deploy/policy.yaml no longer has %q", tc.old)
			}
			rec := build(t, bytes.Replace(base, []byte(tc.old), []byte(tc.new), 1))
			after := strings.Split(rec.Markdown(), "\n")
			if len(after) != len(before) {
				t.Fatalf("%d lines before, %d after", len(before), len(after))
			}
			var changed []string
			for i := range before {
				if before[i] != after[i] && !strings.Contains(after[i], rec.PolicyVersion) {
					changed = append(changed, after[i])
				}
			}
			if len(changed) != 1 || changed[0] != tc.wantRow {
				t.Errorf("changed lines (besides the version):\n%s\nwant only:\n%s", strings.Join(changed, "\n"), tc.wantRow)
			}
			// The row is in the analytics section, the stream with the rule.
			md := rec.Markdown()
			at := strings.Index(md, tc.wantRow)
			if sec := strings.LastIndex(md[:at], "### "); !strings.HasPrefix(md[sec:], "### compliant.analytics\n") {
				t.Errorf("the changed row is not under compliant.analytics")
			}
		})
	}
}

// Every data category of every schema version a stream accepts appears in
// the stream's record, with the field that carries it.
func TestEveryCategoryOfEveryAcceptedSchema(t *testing.T) {
	for _, file := range []string{filepath.Join("..", "..", "deploy", "policy.yaml"), filepath.Join("..", "policy", "testdata", "example.yaml")} {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		pol, err := policy.Parse(text, file)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := Build(pol, catalog(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Streams) != len(pol.Streams) {
			t.Fatalf("%s: %d streams in the record, %d in the policy", file, len(rec.Streams), len(pol.Streams))
		}
		for i, s := range pol.Streams {
			rs := rec.Streams[i]
			checked := 0
			for _, sc := range catalog(t).Schemas() {
				if !strings.HasPrefix(sc.FullName, EventNamespace+".") || !s.Accepts(sc.FullName) {
					continue
				}
				latest, _ := catalog(t).SchemaByName(sc.FullName)
				for path, c := range sc.Annotations {
					checked++
					if !hasField(rs, c, sc.FullName, sc.Version, path, sc == latest) {
						t.Errorf("%s: stream %s: category %s of %s v%d (%s) missing", file, s.Topic, c, sc.FullName, sc.Version, path)
					}
				}
			}
			if checked == 0 {
				t.Errorf("%s: stream %s: no annotated field checked", file, s.Topic)
			}
			for _, c := range rs.Categories {
				for _, f := range c.Fields {
					if f.WithConsent == "" || f.ConsentMissing == "" || f.Excluded == "" {
						t.Errorf("%s: %s %s %s: an outcome is empty: %+v", file, s.Topic, c.Category, f.Path, f)
					}
				}
			}
		}
	}
}

func hasField(s Stream, category, schema string, version int, path string, latest bool) bool {
	for _, c := range s.Categories {
		if c.Category != category {
			continue
		}
		for _, f := range c.Fields {
			if f.Schema == schema && slices.Contains(f.Versions, version) && (!latest || f.Path == path) {
				return true
			}
		}
	}
	return false
}

// unannotated_fields: remove applies to passed events too: the enforcer
// re-encodes them (the example policy's partners stream).
func TestUnannotatedRemoveWithConsent(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "policy", "testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rec := build(t, text)
	var partners *Stream
	for i := range rec.Streams {
		if rec.Streams[i].Topic == "compliant.partners" {
			partners = &rec.Streams[i]
		}
	}
	if partners == nil || partners.UnannotatedFields != policy.UnannotatedRemove {
		t.Fatalf("example policy has no compliant.partners with unannotated_fields: remove")
	}
	for _, f := range partners.Unannotated {
		if f.WithConsent != string(policy.ActionRemove) || f.ConsentMissing != Dropped {
			t.Errorf("unannotated %s: %+v, want removed with consent, dropped without", f.Path, f)
		}
	}
	for _, c := range partners.Categories {
		for _, f := range c.Fields {
			if f.WithConsent != string(policy.ActionKeep) {
				t.Errorf("%s %s with consent: %s, want keep (re-encoded, unchanged)", c.Category, f.Path, f.WithConsent)
			}
		}
	}
	if len(partners.Unannotated) == 0 {
		t.Error("no unannotated fields listed")
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := Build(nil, catalog(t)); err == nil {
		t.Error("nil policy: no error")
	}
	pol, err := policy.Parse([]byte("purposes:\n  - id: a\nstreams:\n  - purposes: [a]\n    schemas: [consentgate.events.Nope]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(pol, catalog(t)); err == nil || !strings.Contains(err.Error(), "consentgate.events.Nope") {
		t.Errorf("unknown schema: %v", err)
	}
	if _, err := Build(pol, nil); err == nil {
		t.Error("nil catalog: no error")
	}
}
