// Package intake is consent-sync's HTTP intake for consent changes, for
// preference centres and consent banners that have no Kafka client.
//
// POST /v1/consent-changes takes one change as a JSON object whose fields are
// named as in schemas/consent_change.avsc (see [Parse] for the rules; times
// are RFC 3339 strings). The handler authenticates the caller (see [Auth]:
// bearer tokens and/or mutual TLS), validates the change (its purpose must be
// one of the policy's catalogue), applies the clock rule
// ([consent.Change.BoundCapturedAt]) against the time it received the request,
// encodes the change with the Avro single-object encoding, produces it to the
// consent topic with acks=all, key = subject_id and the receive time as the
// record's timestamp (so that consent-sync's consumer, which applies the same
// rule against that timestamp, decides the same), and answers:
//
//	202  {"change_id":…, "topic":…, "partition":…, "offset":…,
//	     "captured_at":…}, only after the brokers acknowledged the record;
//	     captured_at is the date recorded, and "captured_at_adjusted":true
//	     says the clock rule moved it (the date sent is kept in the record's
//	     header consentgate.intake.claimed_captured_at);
//	400  {"errors":[{"field":"captured_at","reason":"…"}, …]}, every problem
//	     found; nothing was produced. A problem with the body as a whole has
//	     no "field";
//	401  no or a wrong bearer token (or no client certificate that the
//	     client CA in use verifies); nothing else about the request is
//	     looked at. The credentials are checked when the headers arrive
//	     and again once the body is read, before anything is produced;
//	405  not POST; 413 body over the size limit, or a change whose record
//	     the consent topic refuses as too large (sending it again will not
//	     help; 500 when the topic refuses it as invalid); 415 not
//	     application/json;
//	503  the brokers did not acknowledge within the produce timeout: nothing
//	     is claimed. The record may still have been written (a timeout is
//	     ambiguous); sending the same change again is safe, because changes
//	     are applied by compare-and-set on (captured_at, change_id); also
//	     every request, before any other check, while the credential files
//	     changed and could not be re-read (see [Auth]), with Retry-After
//	     the reload interval.
//
// The intake does not apply the change itself: the consumer applies it from
// the topic like every other change, so the topic stays the system of record.
// Request bodies, subject ids, field values and tokens are never logged.
package intake

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/policy"
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
	// TokensFile holds the bearer tokens, one per line ("#" comments and
	// blank lines allowed), re-read when it changes and on SIGHUP.
	TokensFile string
	// TLSCertFile and TLSKeyFile make the intake serve HTTPS;
	// TLSClientCAFile also requires client certificates verified by it.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// Insecure lets the intake start with neither tokens nor mutual TLS.
	Insecure bool
	// ReloadInterval is how often the credential files are looked at; a
	// change of their content re-reads them ([Auth.Watch]). Zero means
	// DefaultReloadInterval.
	ReloadInterval time.Duration
}

// DefaultReloadInterval is how often the intake looks for changed
// credential files by default.
const DefaultReloadInterval = 10 * time.Second

// DefaultConfig returns the intake's defaults: off.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: DefaultMaxBodyBytes, ReloadInterval: DefaultReloadInterval}
}

// Flags declares the intake settings (CONSENT_INTAKE_*) on s.
func (c *Config) Flags(s *envflag.Set) {
	s.String(&c.Addr, "intake-addr", "CONSENT_INTAKE_ADDR", "host:port of the HTTP intake (POST "+Path+"), e.g. 127.0.0.1:8081; empty: no intake")
	s.String(&c.Topic, "intake-topic", "CONSENT_INTAKE_TOPIC", "topic the intake produces to; empty: the first input topic")
	s.Int(&c.MaxBodyBytes, "intake-max-body", "CONSENT_INTAKE_MAX_BODY", "largest request body of the intake, in bytes (413 above)")
	s.String(&c.TokensFile, "intake-tokens-file", "CONSENT_INTAKE_TOKENS_FILE", "file of the intake's bearer tokens, one per line (# comments), at least 16 characters each; re-read when its content changes and on SIGHUP")
	s.String(&c.TLSCertFile, "intake-tls-cert-file", "CONSENT_INTAKE_TLS_CERT_FILE", "PEM certificate (chain) of the intake: serve HTTPS; re-read when it changes and on SIGHUP")
	s.String(&c.TLSKeyFile, "intake-tls-key-file", "CONSENT_INTAKE_TLS_KEY_FILE", "PEM private key of CONSENT_INTAKE_TLS_CERT_FILE")
	s.String(&c.TLSClientCAFile, "intake-tls-client-ca-file", "CONSENT_INTAKE_TLS_CLIENT_CA_FILE", "PEM CA bundle: require client certificates it verifies (mutual TLS); needs the cert and key")
	s.Duration(&c.ReloadInterval, "intake-reload-interval", "CONSENT_INTAKE_RELOAD_INTERVAL", "how often the tokens and TLS files are looked at: a changed content is re-read (a revoked token stops working); a file that does not read then refuses every request (503) and fails readiness until it does; 100ms..5m")
	s.Bool(&c.Insecure, "intake-insecure", "CONSENT_INTAKE_INSECURE", "let the intake start without tokens or mutual TLS: anyone who reaches it can grant consent (development only)")
}

// Authenticated reports whether the intake has tokens or mutual TLS.
func (c Config) Authenticated() bool { return c.TokensFile != "" || c.TLSClientCAFile != "" }

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
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("CONSENT_INTAKE_TLS_CERT_FILE and CONSENT_INTAKE_TLS_KEY_FILE go together: set both, or neither"))
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("CONSENT_INTAKE_TLS_CLIENT_CA_FILE needs CONSENT_INTAKE_TLS_CERT_FILE and CONSENT_INTAKE_TLS_KEY_FILE: mutual TLS is TLS"))
	}
	if c.ReloadInterval != 0 && (c.ReloadInterval < 100*time.Millisecond || c.ReloadInterval > 5*time.Minute) {
		errs = append(errs, fmt.Errorf("CONSENT_INTAKE_RELOAD_INTERVAL %s out of range: set it to 100ms..5m (a revoked token keeps working up to this long)", c.ReloadInterval))
	}
	if c.Addr != "" && !c.Authenticated() && !c.Insecure {
		errs = append(errs, errors.New("the intake (CONSENT_INTAKE_ADDR) has no authentication: anyone who reaches it could grant consent; "+
			"set CONSENT_INTAKE_TOKENS_FILE (bearer tokens) and/or CONSENT_INTAKE_TLS_CERT_FILE, _KEY_FILE and _CLIENT_CA_FILE (mutual TLS), "+
			"or CONSENT_INTAKE_INSECURE=true for development"))
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
	// Auth, when set, authenticates every request (401 otherwise). nil
	// authenticates nothing: consent-sync only runs so with
	// CONSENT_INTAKE_INSECURE=true.
	Auth *Auth
	// Purposes is the policy's catalogue: a change for any other purpose
	// is answered 400. nil or empty rejects every change with a purpose.
	Purposes map[string]bool
	// MaxClockSkew is the clock rule's bound (consent.DefaultMaxClockSkew
	// when zero): consent-sync passes CONSENT_MAX_CLOCK_SKEW, the same
	// value its consumer uses.
	MaxClockSkew time.Duration
	// Now is the receive clock (time.Now when nil).
	Now func() time.Time
	// Policy maps consent signals to changes ([SignalsPath]); nil, or a
	// policy without a signals section, answers that path 404.
	Policy *policy.Policy
}

// HeaderClaimedCapturedAt is the header of a produced record whose
// captured_at the clock rule moved: the captured_at sent, RFC 3339 in UTC.
const HeaderClaimedCapturedAt = "consentgate.intake.claimed_captured_at"

// Handler serves POST /v1/consent-changes. It owns a Kafka writer (acks=all),
// released by Close. It is safe for concurrent use.
type Handler struct {
	opts Options
	enc  Encoder
	w    *kafka.Writer

	mu      sync.Mutex
	pending map[*byte]*ack

	// Accepted counts 202 answers; Rejected 4xx answers other than 401;
	// Unauthorized 401 answers; Unavailable 503 answers, of which
	// CredentialsUnavailable those because the credential files could not
	// be re-read (the others: the brokers did not acknowledge);
	// ClockAdjusted accepted changes whose captured_at the clock rule
	// moved.
	Accepted, Rejected, Unauthorized, Unavailable, CredentialsUnavailable, ClockAdjusted atomic.Int64
	// SignalChanges counts the changes produced from accepted signal
	// submissions; SignalsIgnored the submissions that decided nothing
	// (200).
	SignalChanges, SignalsIgnored atomic.Int64
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
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = consent.DefaultMaxClockSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Purposes == nil {
		opts.Purposes = map[string]bool{}
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
	// CapturedAt is the captured_at recorded (RFC 3339, UTC).
	CapturedAt string `json:"captured_at"`
	// CapturedAtAdjusted says the clock rule moved captured_at.
	CapturedAtAdjusted bool `json:"captured_at_adjusted,omitempty"`
}

// ServeHTTP implements the contract of the package documentation.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := h.opts.Now().Truncate(time.Millisecond)
	// The credentials are checked before and again once the body is in: a
	// client that trickles its body must not outlive its token's
	// revocation (or its CA's withdrawal) read while it was sending.
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	c, problems := Parse(body, h.opts.Purposes)
	claimed := c.CapturedAt
	if len(problems) == 0 {
		var err error
		if c, err = c.BoundCapturedAt(received, h.opts.MaxClockSkew); err != nil {
			problems = problemsOf(err)
		}
	}
	if len(problems) > 0 {
		h.Rejected.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": problems})
		return
	}
	adjusted := !c.CapturedAt.Equal(claimed)
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
	// The receive time is the record's timestamp: the consumer bounds
	// captured_at against it with the same rule, and finds nothing to move.
	msg := kafka.Message{Topic: h.opts.Topic, Key: []byte(c.SubjectID), Value: value, Time: received}
	if adjusted {
		msg.Headers = []kafka.Header{{Key: HeaderClaimedCapturedAt, Value: []byte(claimed.UTC().Format(rfc3339Milli))}}
	}
	if err := stream.WriteAll(ctx, h.w, []kafka.Message{msg}, nil); err != nil {
		var refused *stream.RejectedError
		if errors.As(err, &refused) {
			// Refused for good (larger than the topic or the writer
			// accepts, or invalid): resending it would never help.
			h.Rejected.Add(1)
			reason := refused.Rejected[0].Reason
			h.opts.Log.Warn("intake: the consent topic refused a change for good; answered it as permanent", "topic", h.opts.Topic, "reason", reason, "error", err.Error())
			code, text := http.StatusRequestEntityTooLarge, "the change's record is larger than the consent topic accepts: it is not recorded, and sending it again will not help; shorten its fields"
			if reason != stream.ReasonTooLarge {
				code, text = http.StatusInternalServerError, "the consent topic refused the change's record as invalid: it is not recorded, and sending it again will not help"
			}
			writeJSON(w, code, map[string]any{"errors": []Problem{{Reason: text}}})
			return
		}
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
	if adjusted {
		h.ClockAdjusted.Add(1)
	}
	writeJSON(w, http.StatusAccepted, Accepted{ChangeID: c.ChangeID, Topic: h.opts.Topic, Partition: got.partition, Offset: got.offset,
		CapturedAt: c.CapturedAt.UTC().Format(rfc3339Milli), CapturedAtAdjusted: adjusted})
}

// admit answers 503 while the credential files could not be re-read and
// 401 to a request without the credentials in use, and reports whether r
// may go on.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	a := h.opts.Auth
	if a == nil {
		return true
	}
	if a.stale.Load() {
		// The credential files changed and could not be re-read: which
		// tokens are valid is unknown, so none is (fail closed).
		h.Unavailable.Add(1)
		h.CredentialsUnavailable.Add(1)
		w.Header().Set("Retry-After", a.RetryAfter())
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": []Problem{{
			Reason: "the intake cannot check credentials now: nothing was recorded; send it again later",
		}}})
		return false
	}
	if !a.authorized(r) {
		h.Unauthorized.Add(1)
		if r.TLS != nil && a.MutualTLS() && !a.clientCertValid(r.TLS, time.Now()) {
			// A connection made under a client CA since withdrawn (or
			// with a certificate since expired): end it, so that the
			// client has to handshake again.
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="consentgate-intake"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []Problem{{
			Reason: "not authenticated: send Authorization: Bearer <token> with a token of the intake (or the client certificate it requires)",
		}}})
		return false
	}
	return true
}

// rfc3339Milli formats times as the intake reads them, to the millisecond.
const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

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

// Start listens on addr and serves h at [Path] in the background, over TLS
// when tlsConf is not nil (see [Auth.TLSConfig]). The server's timeouts: 5s
// to read the headers, 15s for the whole request, produceTimeout+5s to
// answer. Listening errors are returned at once.
func Start(addr string, h http.Handler, tlsConf *tls.Config, produceTimeout time.Duration, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on CONSENT_INTAKE_ADDR: %w", err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	if sh, ok := h.(*Handler); ok {
		mux.Handle(SignalsPath, sh.Signals())
	}
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
