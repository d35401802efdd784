package schemaregistry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/schemaregistry/registrytest"
	"go.uber.org/goleak"
)

const schemaA = `{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}`

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func TestSchema(t *testing.T) {
	t.Parallel()
	reg := registrytest.New()
	id := reg.Add("a-value", schemaA)
	url := registrytest.Start(t, reg)

	tests := []struct {
		name     string
		id       int
		fail     int // status the registry answers with
		want     string
		notFound bool
		retry    bool
	}{
		{name: "known id", id: id, want: schemaA},
		{name: "unknown id", id: 42, notFound: true},
		{name: "server error", id: id, fail: http.StatusInternalServerError, retry: true},
		{name: "rate limited", id: id, fail: http.StatusTooManyRequests, retry: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := reg
			u := url
			if tc.fail != 0 {
				r = registrytest.New()
				r.Add("a-value", schemaA)
				r.FailWith(tc.fail)
				u = registrytest.Start(t, r)
			}
			got, err := schemaregistry.New(u, nil).Schema(context.Background(), tc.id)
			if errors.Is(err, schemaregistry.ErrNotFound) != tc.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, !tc.notFound, tc.notFound)
			}
			if schemaregistry.IsRetryable(err) != tc.retry {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, !tc.retry, tc.retry)
			}
			if got != tc.want {
				t.Errorf("Schema() = %q, want %q", got, tc.want)
			}
			if err != nil {
				var re *schemaregistry.Error
				if !errors.As(err, &re) || re.StatusCode == 0 {
					t.Errorf("error %v is not an *Error with a status", err)
				}
			}
		})
	}
}

func TestSchemaCachedAndShared(t *testing.T) {
	t.Parallel()
	reg := registrytest.New()
	id := reg.Add("a-value", schemaA)
	client := schemaregistry.New(registrytest.Start(t, reg), nil)

	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if s, err := client.Schema(context.Background(), id); err != nil || s != schemaA {
				t.Errorf("Schema() = %q, %v", s, err)
			}
		})
	}
	wg.Wait()
	for range 3 {
		if _, err := client.Schema(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if hits := reg.Hits("GET", "/schemas/ids/1"); hits != 1 {
		t.Fatalf("registry hits = %d, want 1", hits)
	}
	// Errors are not cached.
	for range 2 {
		_, _ = client.Schema(context.Background(), 9)
	}
	if hits := reg.Hits("GET", "/schemas/ids/9"); hits != 2 {
		t.Fatalf("registry hits for an unknown id = %d, want 2", hits)
	}
}

func TestSchemaTransportErrors(t *testing.T) {
	t.Parallel()
	// A server that is not a registry: every path is a bare 404.
	notRegistry := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notRegistry.Close)
	// A registry that answers too slowly.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	// A registry that serves a protobuf schema.
	proto := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}`))
	}))
	t.Cleanup(proto.Close)

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    error
	}{
		{name: "connection refused", url: "http://127.0.0.1:1", want: schemaregistry.ErrUnavailable},
		{name: "bare 404 is not a missing schema", url: notRegistry.URL, want: schemaregistry.ErrUnavailable},
		{name: "caller deadline", url: slow.URL, timeout: 50 * time.Millisecond, want: schemaregistry.ErrUnavailable},
		{name: "not avro", url: proto.URL, want: schemaregistry.ErrNotAvro},
		{name: "invalid url", url: "localhost:8081", want: schemaregistry.ErrInvalidURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := schemaregistry.New(tc.url, nil).Schema(ctx, 1)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Schema() error = %v, want %v", err, tc.want)
			}
			if errors.Is(err, schemaregistry.ErrNotFound) {
				t.Fatalf("Schema() error = %v classified as not found", err)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	reg := registrytest.New()
	client := schemaregistry.New(registrytest.Start(t, reg)+"/", nil)
	ctx := context.Background()

	id, err := client.Register(ctx, "customer.events-value", schemaA)
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.Register(ctx, "other-value", schemaA)
	if err != nil || again != id {
		t.Fatalf("Register(same schema) = %d, %v; want %d", again, err, id)
	}
	got, err := client.Schema(ctx, id)
	if err != nil || got != schemaA {
		t.Fatalf("Schema() = %q, %v", got, err)
	}
	if hits := reg.Hits("GET", "/schemas/ids/1"); hits != 0 {
		t.Errorf("Schema() after Register made %d requests, want 0", hits)
	}
	reg.FailWith(http.StatusServiceUnavailable)
	if _, err := client.Register(ctx, "x-value", `"string"`); !schemaregistry.IsRetryable(err) {
		t.Errorf("Register() with registry down: %v, want retryable", err)
	}
}

func TestErrorsDoNotLeakCredentials(t *testing.T) {
	t.Parallel()
	_, err := schemaregistry.New("http://user:s3cret@127.0.0.1:1", nil).Schema(context.Background(), 1)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Schema() error = %v: want an error without the password", err)
	}
}
