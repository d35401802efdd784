// Package intake is consent-sync's HTTP intake for consent changes, for
// preference centres and consent banners that have no Kafka client.
//
// POST /v1/consent-changes takes one change as a JSON object whose fields are
// named as in schemas/consent_change.avsc (see [Parse] for the rules; times
// are RFC 3339 strings). The handler validates it, encodes it with the Avro
// single-object encoding, produces it to the consent topic with acks=all and
// key = subject_id (exactly what any other producer of that topic does), and
// answers:
//
//	202  {"change_id":…, "topic":…, "partition":…, "offset":…}, only after the
//	     brokers acknowledged the record;
//	400  {"errors":[{"field":"captured_at","reason":"…"}, …]}, every problem
//	     found; nothing was produced. A problem with the body as a whole has
//	     no "field";
//	405  not POST; 413 body over the size limit; 415 not application/json;
//	503  the brokers did not acknowledge within the produce timeout: nothing
//	     is claimed. The record may still have been written (a timeout is
//	     ambiguous); sending the same change again is safe, because changes
//	     are applied by compare-and-set on (captured_at, change_id).
//
// The intake does not apply the change itself: the consumer applies it from
// the topic like every other change, so the topic stays the system of record.
// Request bodies, subject ids and field values are never logged.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/stream"
)

// Path is the URL path of the intake.
const Path = "/v1/consent-changes"

// ChangeSchema is the full name of the Avro schema of the records produced.
const ChangeSchema = "consentgate.consent.ConsentChange"

// DefaultMaxBodyBytes is the default request body limit (64 KiB).
const DefaultMaxBodyBytes = 64 << 10

// Config is the intake's part of consent-sync's configuration.
type Config struct {
	// Addr is the host:port to listen on; empty turns the intake off.
	Addr string
	// Topic is where changes are produced; empty means the first of
	// consent-sync's input topics.
	Topic string
	// MaxBodyBytes limits a request body.
	MaxBodyBytes int
}

// DefaultConfig returns the intake's defaults: off.
func DefaultConfig() Config { return Config{MaxBodyBytes: DefaultMaxBodyBytes} }

// Flags declares the intake settings (CONSENT_INTAKE_*) on s.
func (c *Config) Flags(s *envflag.Set) {
	s.String(&c.Addr, "intake-addr", "CONSENT_INTAKE_ADDR", "host:port of the HTTP intake (POST "+Path+"), e.g. 127.0.0.1:8081; empty: no intake")
	s.String(&c.Topic, "intake-topic", "CONSENT_INTAKE_TOPIC", "topic the intake produces to; empty: the first input topic")
	s.Int(&c.MaxBodyBytes, "intake-max-body", "CONSENT_INTAKE_MAX_BODY", "largest request body of the intake, in bytes (413 above)")
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	var errs []error
	if c.Addr != "" {
		if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("CONSENT_INTAKE_ADDR %q is not host:port: set it to e.g. 127.0.0.1:8081, or unset it", c.Addr))
		}
	}
	if c.Topic != "" && strings.ContainsAny(c.Topic, " ,/") {
		errs = append(errs, fmt.Errorf("bad topic name %q: fix CONSENT_INTAKE_TOPIC", c.Topic))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 10<<20 {
		errs = append(errs, fmt.Errorf("intake body limit %d out of range: set CONSENT_INTAKE_MAX_BODY to 1024..10485760", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}

// Encoder encodes a record with the Avro single-object encoding;
// *avrocodec.Codec fits it.
type Encoder interface {
	EncodeSingle(fullName string, value map[string]any) ([]byte, error)
}

// Options configure a Handler.
type Options struct {
	// Topic is where changes are produced.
	Topic string
	// MaxBodyBytes limits a request body (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// ProduceTimeout bounds the wait for the brokers' acknowledgement
	// (default 10s); past it the answer is 503.
	ProduceTimeout time.Duration
	// Log receives produce failures (never a body or a subject id).
	Log *slog.Logger
}

// Handler serves POST /v1/consent-changes. It owns a Kafka writer (acks=all),
// released by Close. It is safe for concurrent use.
type Handler struct {
	opts Options
	enc  Encoder
	w    *kafka.Writer

	mu      sync.Mutex
	pending map[*byte]*ack

	// Accepted counts 202 answers; Rejected 4xx answers; Unavailable 503
	// answers.
	Accepted, Rejected, Unavailable atomic.Int64
}

type ack struct {
	partition int
	offset    int64
	ok        bool
}

// New returns a Handler producing with its own writer to the brokers of kc.
func New(opts Options, enc Encoder, kc stream.Config) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ProduceTimeout <= 0 {
		opts.ProduceTimeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, enc: enc, pending: map[*byte]*ack{}}
	h.w = stream.NewWriter(kc)
	h.w.Completion = h.completed
	return h
}

// Close flushes and closes the handler's writer. Call it after the server
// has shut down.
func (h *Handler) Close() error { return h.w.Close() }

// completed records the partition and offset of acknowledged records. The
// writer passes the original value slices (kafka-go documents it), so the
// address of a value's first byte identifies the request that sent it.
func (h *Handler) completed(msgs []kafka.Message, err error) {
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range msgs {
		if len(m.Value) == 0 {
			continue
		}
		if a, ok := h.pending[&m.Value[0]]; ok {
			a.partition, a.offset, a.ok = m.Partition, m.Offset, true
		}
	}
}

// Accepted is the body of a 202 answer.
type Accepted struct {
	ChangeID  string `json:"change_id"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// ServeHTTP implements the contract of the package documentation.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		h.fail(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json (UTF-8)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, http.StatusRequestEntityTooLarge, "body is larger than "+strconv.FormatInt(h.opts.MaxBodyBytes, 10)+" bytes")
			return
		}
		h.fail(w, http.StatusBadRequest, "body could not be read")
		return
	}
	c, problems := Parse(body)
	if len(problems) > 0 {
		h.Rejected.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": problems})
		return
	}
	value, err := h.enc.EncodeSingle(ChangeSchema, c.Native())
	if err != nil {
		// A validated change always encodes; this is a bug, not bad input.
		h.opts.Log.Error("intake: encode a valid change", "error", err.Error())
		writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []Problem{{Reason: "the change could not be encoded"}}})
		return
	}
	a := &ack{}
	h.mu.Lock()
	h.pending[&value[0]] = a
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.pending, &value[0])
		h.mu.Unlock()
	}()

	// The produce is not cut short by a client that goes away: its outcome
	// must not depend on the client's patience, only on the timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.opts.ProduceTimeout)
	defer cancel()
	msg := kafka.Message{Topic: h.opts.Topic, Key: []byte(c.SubjectID), Value: value}
	if err := stream.WriteAll(ctx, h.w, []kafka.Message{msg}, nil); err != nil {
		h.Unavailable.Add(1)
		h.opts.Log.Warn("intake: consent topic did not acknowledge a change; answered 503", "topic", h.opts.Topic, "error", err.Error())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": []Problem{{
			Reason: "the consent topic did not acknowledge the change in time: it is not recorded; send it again (the same change_id is safe to resend)",
		}}})
		return
	}
	h.mu.Lock()
	got := *a
	h.mu.Unlock()
	if !got.ok {
		got.partition, got.offset = -1, -1 // acknowledged, coordinates unknown
	}
	h.Accepted.Add(1)
	writeJSON(w, http.StatusAccepted, Accepted{ChangeID: c.ChangeID, Topic: h.opts.Topic, Partition: got.partition, Offset: got.offset})
}

func (h *Handler) fail(w http.ResponseWriter, code int, reason string) {
	h.Rejected.Add(1)
	writeJSON(w, code, map[string]any{"errors": []Problem{{Reason: reason}}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Server is the intake's HTTP server.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	errc chan error
}

// Start listens on addr and serves h at [Path] in the background. The
// server's timeouts: 5s to read the headers, 15s for the whole request,
// produceTimeout+5s to answer. Listening errors are returned at once.
func Start(addr string, h http.Handler, produceTimeout time.Duration, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on CONSENT_INTAKE_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	s := &Server{
		ln:   ln,
		errc: make(chan error, 1),
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      produceTimeout + 5*time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	go func() {
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("intake server: %w", err)
		}
		close(s.errc)
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Err delivers an error if the server stops serving by itself; it is closed
// after Shutdown.
func (s *Server) Err() <-chan error { return s.errc }

// Shutdown stops accepting requests and waits, until ctx ends, for the
// requests in flight to be answered (each within its produce timeout).
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
