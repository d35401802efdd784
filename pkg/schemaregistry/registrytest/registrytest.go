// Package registrytest serves the subset of the Confluent Schema Registry
// REST API that consentgate uses, from memory, over real HTTP: register a
// schema under a subject, fetch a schema by id, list subjects and versions.
// Tests and the local dev stack use it where a real registry is not running.
package registrytest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Registry is an in-memory schema registry. Its zero value is not usable;
// make one with New. It is an http.Handler and safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	byID     map[int]string
	idOf     map[string]int   // schema text -> id
	subjects map[string][]int // subject -> ids by version
	hits     map[string]int   // "GET /schemas/ids/1" -> count
	failing  int              // status to answer every request with, 0 = none
	nextID   int
}

// New returns an empty registry. Ids start at 1.
func New() *Registry {
	return &Registry{
		byID:     map[int]string{},
		idOf:     map[string]int{},
		subjects: map[string][]int{},
		hits:     map[string]int{},
		nextID:   1,
	}
}

// Start serves r on a loopback port for the duration of the test and returns
// its base URL.
func Start(t testing.TB, r *Registry) string {
	t.Helper()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Add registers schema under subject without HTTP and returns its id.
func (r *Registry) Add(subject, schema string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.add(subject, schema)
}

func (r *Registry) add(subject, schema string) int {
	id, ok := r.idOf[schema]
	if !ok {
		id = r.nextID
		r.nextID++
		r.idOf[schema] = id
		r.byID[id] = schema
	}
	for _, existing := range r.subjects[subject] {
		if existing == id {
			return id
		}
	}
	r.subjects[subject] = append(r.subjects[subject], id)
	return id
}

// Hits returns how many requests were made for method and path, e.g.
// Hits("GET", "/schemas/ids/1").
func (r *Registry) Hits(method, path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[method+" "+path]
}

// FailWith makes every following request answer with HTTP status (e.g. 503);
// 0 restores normal service.
func (r *Registry) FailWith(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = status
}

// ServeHTTP implements the registry endpoints.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits[req.Method+" "+req.URL.Path]++
	if r.failing != 0 {
		writeErr(w, r.failing, r.failing*100+1, "injected failure")
		return
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case req.Method == http.MethodGet && len(parts) == 3 && parts[0] == "schemas" && parts[1] == "ids":
		id, err := strconv.Atoi(parts[2])
		schema, ok := r.byID[id]
		if err != nil || !ok {
			writeErr(w, http.StatusNotFound, 40403, "Schema not found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"schema": schema})
	case req.Method == http.MethodPost && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		var body struct {
			Schema     string `json:"schema"`
			SchemaType string `json:"schemaType"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil || body.Schema == "" {
			writeErr(w, http.StatusUnprocessableEntity, 42201, "Invalid schema")
			return
		}
		if body.SchemaType != "" && body.SchemaType != "AVRO" {
			writeErr(w, http.StatusUnprocessableEntity, 42201, "Only AVRO is supported")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": r.add(parts[1], body.Schema)})
	case req.Method == http.MethodGet && len(parts) == 1 && parts[0] == "subjects":
		names := make([]string, 0, len(r.subjects))
		for s := range r.subjects {
			names = append(names, s)
		}
		writeJSON(w, http.StatusOK, names)
	case req.Method == http.MethodGet && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		ids, ok := r.subjects[parts[1]]
		if !ok {
			writeErr(w, http.StatusNotFound, 40401, "Subject not found")
			return
		}
		versions := make([]int, len(ids))
		for i := range ids {
			versions[i] = i + 1
		}
		writeJSON(w, http.StatusOK, versions)
	default:
		http.NotFound(w, req)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"error_code": code, "message": msg})
}
