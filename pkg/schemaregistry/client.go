// Package schemaregistry is a small client of the Confluent Schema Registry
// REST API: it fetches writer schemas by id (cached forever, since ids are
// immutable) and registers schemas under a subject.
//
// Errors are classified: a schema id the registry does not know satisfies
// errors.Is(err, ErrNotFound) and is permanent; network errors, timeouts, 5xx
// and 429 responses, and a 404 that does not come from the registry API
// satisfy errors.Is(err, ErrUnavailable) and IsRetryable.
// Every HTTP error response is also an *Error carrying the status and the
// registry's error_code.
package schemaregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned when the registry does not know a schema id or
// subject (HTTP 404 with error code 40401, 40402 or 40403).
var ErrNotFound = errors.New("schema not found")

// ErrUnavailable marks a transient failure: the registry could not be
// reached, timed out, or answered 5xx or 429. The same call may succeed
// later.
var ErrUnavailable = errors.New("schema registry unavailable")

// ErrNotAvro is returned by Schema when the id names a schema of another type
// (PROTOBUF, JSON).
var ErrNotAvro = errors.New("schema is not avro")

// Error is an error response of the registry.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the registry's error_code, e.g. 40403 (schema not found);
	// 0 when the body carried none.
	Code int
	// Message is the registry's message, truncated.
	Message string
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("schema registry: http %d, error code %d: %s", e.StatusCode, e.Code, e.Message)
	}
	return fmt.Sprintf("schema registry: http %d: %s", e.StatusCode, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) and errors.Is(err, ErrUnavailable)
// classify registry responses.
//
// Only a response carrying one of the registry's not-found error codes
// (40401 subject, 40402 version, 40403 schema) is ErrNotFound. A bare 404
// without such a code comes from something else (a wrong base path, a proxy):
// it is classified as ErrUnavailable so that a misconfiguration pauses the
// pipeline instead of dead-lettering every message.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == 40401 || e.Code == 40402 || e.Code == 40403
	case ErrUnavailable:
		if e.StatusCode == http.StatusNotFound {
			return !e.Is(ErrNotFound)
		}
		return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
	}
	return false
}

// IsRetryable reports whether err is transient (ErrUnavailable): a network
// error, a timeout or a 5xx/429 response.
func IsRetryable(err error) bool { return errors.Is(err, ErrUnavailable) }

// DefaultTimeout bounds each registry request when the caller's context has
// no earlier deadline.
const DefaultTimeout = 10 * time.Second

// Client talks to one schema registry. It is safe for concurrent use; schemas
// fetched by id are cached for the life of the client, and concurrent
// lookups of the same uncached id share one HTTP request.
type Client struct {
	base   *url.URL
	urlErr error
	http   *http.Client

	mu       sync.Mutex
	cache    map[int]string
	inflight map[int]*call
}

type call struct {
	done   chan struct{}
	schema string
	err    error
}

// New returns a client of the registry at baseURL (e.g.
// http://localhost:8081; a path prefix is kept). httpClient may be nil for a
// client with DefaultTimeout. Credentials in baseURL (user:password@) are
// sent as basic authentication. An invalid baseURL makes every call fail with
// ErrInvalidURL; check configuration with ValidateURL first.
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultTimeout}
	}
	c := &Client{http: httpClient, cache: map[int]string{}, inflight: map[int]*call{}}
	c.base, c.urlErr = parseURL(baseURL)
	return c
}

// ErrInvalidURL is returned by every call of a client made with an invalid
// base URL.
var ErrInvalidURL = errors.New("invalid schema registry url")

// ValidateURL reports whether baseURL can be used with New: an absolute
// http or https URL with a host. The error does not repeat the URL, which may
// hold credentials.
func ValidateURL(baseURL string) error {
	_, err := parseURL(baseURL)
	return err
}

func parseURL(baseURL string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("%w: does not parse", ErrInvalidURL)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme must be http or https", ErrInvalidURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	return u, nil
}

// Schema returns the schema text registered under id (GET /schemas/ids/{id}).
// Results are cached forever; errors are not cached. A waiter whose context
// ends stops waiting, while the shared request goes on for the others.
func (c *Client) Schema(ctx context.Context, id int) (string, error) {
	c.mu.Lock()
	if s, ok := c.cache[id]; ok {
		c.mu.Unlock()
		return s, nil
	}
	cl, running := c.inflight[id]
	if !running {
		cl = &call{done: make(chan struct{})}
		c.inflight[id] = cl
		c.mu.Unlock()
		go c.fetch(context.WithoutCancel(ctx), id, cl)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-cl.done:
		return cl.schema, cl.err
	case <-ctx.Done():
		return "", fmt.Errorf("fetch schema %d: %w: %w", id, ErrUnavailable, ctx.Err())
	}
}

func (c *Client) fetch(ctx context.Context, id int, cl *call) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	var body struct {
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType"`
	}
	err := c.do(ctx, http.MethodGet, nil, &body, "schemas", "ids", strconv.Itoa(id))
	switch {
	case err != nil:
		cl.err = fmt.Errorf("fetch schema %d: %w", id, err)
	case body.SchemaType != "" && !strings.EqualFold(body.SchemaType, "AVRO"):
		cl.err = fmt.Errorf("fetch schema %d: %w (type %s)", id, ErrNotAvro, body.SchemaType)
	case body.Schema == "":
		cl.err = fmt.Errorf("fetch schema %d: %w: empty schema in response", id, ErrUnavailable)
	default:
		cl.schema = body.Schema
	}
	c.mu.Lock()
	if cl.err == nil {
		c.cache[id] = cl.schema
	}
	delete(c.inflight, id)
	c.mu.Unlock()
	close(cl.done)
}

// Register registers schema (Avro JSON) under subject
// (POST /subjects/{subject}/versions) and returns its global id. Registering
// a schema that already exists returns the existing id. The id is cached so
// that a following Schema call needs no request.
func (c *Client) Register(ctx context.Context, subject, schema string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	req := struct {
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType,omitempty"`
	}{Schema: schema}
	var resp struct {
		ID int `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, req, &resp, "subjects", subject, "versions"); err != nil {
		return 0, fmt.Errorf("register schema: %w", err)
	}
	if resp.ID <= 0 {
		return 0, errors.New("register schema: registry returned no id")
	}
	c.mu.Lock()
	if _, ok := c.cache[resp.ID]; !ok {
		c.cache[resp.ID] = schema
	}
	c.mu.Unlock()
	return resp.ID, nil
}

const contentType = "application/vnd.schemaregistry.v1+json"

// do sends one request and decodes a 2xx JSON body into out.
func (c *Client) do(ctx context.Context, method string, in, out any, segments ...string) error {
	if c.urlErr != nil {
		return c.urlErr
	}
	u := c.base.JoinPath(segments...)
	u.User = nil
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", contentType+", application/json")
	if in != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.base.User != nil {
		pw, _ := c.base.User.Password()
		req.SetBasicAuth(c.base.User.Username(), pw)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Strip the URL (it may hold credentials) but keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%w: read response: %w", ErrUnavailable, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{StatusCode: resp.StatusCode}
		var eb struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &eb) == nil {
			e.Code, e.Message = eb.Code, eb.Message
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: decode response: %w", ErrUnavailable, err)
	}
	return nil
}
