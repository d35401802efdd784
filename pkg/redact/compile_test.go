package redact

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"regexp"
	"testing"
	"testing/fstest"

	"github.com/consentgate/consentgate/pkg/avrocodec"

	"github.com/consentgate/consentgate/pkg/policy"
)

// TestCompiledMatchesReference checks Apply, which follows a compiled
// program reused across events, against the reference walker that decides
// every field while it walks (reference_test.go): the same value, treated
// paths and error for many generated events, streams, exclusion sets,
// modes and writer schemas, with programs reused for new values and
// streams whose rules change in place after a program was compiled.
func TestCompiledMatchesReference(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	all := fuzzSchemas(t)
	pats := patterns()
	cat, _ := catalogs(t)
	g := &gen{rnd: rand.New(rand.NewPCG(11, 12)), made: map[string]bool{}}
	variants := map[*avrocodec.Schema]*avrocodec.Schema{}
	for _, s := range all {
		variants[s] = recategorised(t, s, g.rnd)
	}
	compared, treated := 0, 0
	for range 1500 {
		s := all[g.rnd.IntN(len(all))]
		root, err := r.plan(s)
		if err != nil {
			t.Fatal(err)
		}
		req := g.request(s, root.t, pats)
		// A writer of another version, or one that annotates the fields
		// differently: its annotations count too.
		switch g.rnd.IntN(3) {
		case 0:
			if vs := cat.Versions(s.FullName); len(vs) > 1 {
				req.Writer = vs[g.rnd.IntN(len(vs))]
			}
		case 1:
			req.Writer = variants[s]
		}
		for i := range 4 {
			if i > 0 {
				req.Value = g.value(root.t).(map[string]any)
			}
			if i == 3 && len(req.Stream.Treatments) > 0 {
				// Rules changed in place: the program must not be reused.
				req.Stream.Treatments[0].Action = g.action()
			}
			// Randomised ciphertexts carry the keys' counter, which map
			// order makes differ between two walks: hold it still.
			if keys, ok := req.Keys.(*testKeys); ok {
				keys.still = true
			}
			got, gotErr := r.Apply(req)
			want, wantErr := r.refApply(req)
			if !sameErr(gotErr, wantErr) {
				t.Fatalf("%s: Apply error = %v, reference error = %v", s.FullName, gotErr, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s (mode %v, stream %+v, excluded %q, writer %v):\nApply     = %#v\nreference = %#v",
					s.FullName, req.Mode, req.Stream, req.Excluded, req.Writer != nil, got, want)
			}
			compared++
			treated += len(got.Treated)
		}
	}
	if treated == 0 {
		t.Fatal("no generated request treated a field")
	}
	t.Logf("%d requests compared, %d treated paths", compared, treated)
}

// TestProgramCacheBounded checks that the program cache stays bounded when
// every request comes with a stream of its own.
func TestProgramCacheBounded(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	s := schemaOf(t, purchaseName, 0)
	for i := range maxPrograms + 10 {
		st := keepAll(fieldRule("email", policy.ActionRemove))
		if _, err := r.Apply(Request{Schema: s, Value: purchase(), Stream: st, Mode: ModeRedact}); err != nil {
			t.Fatal(err)
		}
		r.progMu.RLock()
		n := len(r.progs)
		r.progMu.RUnlock()
		if n > maxPrograms {
			t.Fatalf("after %d requests the cache holds %d programs, more than %d", i+1, n, maxPrograms)
		}
	}
}

func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	var ma, mb *MismatchError
	if errors.As(a, &ma) && errors.As(b, &mb) {
		return *ma == *mb
	}
	return errors.Is(a, b) || a.Error() == b.Error()
}

var categoryProp = regexp.MustCompile(`"data_category": *"[^"]*"`)

// recategorised returns s with every data_category replaced by a random
// category, as a writer schema that annotates the same fields differently.
func recategorised(t *testing.T, s *avrocodec.Schema, rnd *rand.Rand) *avrocodec.Schema {
	t.Helper()
	text := categoryProp.ReplaceAllStringFunc(s.Text, func(string) string {
		return `"data_category": "` + policy.Categories[rnd.IntN(len(policy.Categories))] + `"`
	})
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"variant.avsc": {Data: []byte(text)}})
	if err != nil {
		t.Fatalf("variant of %s: %v", s.FullName, err)
	}
	return cat.Schemas()[0]
}
