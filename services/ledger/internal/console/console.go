// Package console is the compliance team's read-only web console, served by
// the ledger: a subject's timeline, breach scoping, completeness of the
// audit, verification of the sealed audit against the ledger, and the
// policy versions. Pages are rendered on the server with html/template (no
// JavaScript, no build step), behind the bearer tokens of Auth.
//
// A subject id never travels in a URL (the subject and breach searches are
// POSTed forms), so it is in no access log, browser history or Referer;
// the console logs each request's method, path and status, nothing else.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/topicread"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.css
var staticFS embed.FS

// SealStatus is what the console shows of the ledger's sealer; *Sealer of
// the ledger service fits it.
type SealStatus interface {
	// Problems lists the audit partitions that are no longer sealed, and
	// why.
	Problems() map[int32]string
}

// TopicOffsets gives the offset ranges a topic holds now, for the expected
// ranges of completeness; *topicread.Client fits it.
type TopicOffsets interface {
	Offsets(ctx context.Context, topic string) (map[int32]topicread.Range, error)
}

// Config is what a Console is built from.
type Config struct {
	// Store is the ledger the pages read (required); open it with
	// ledger.WithCatalog for the data categories of breach scoping.
	Store *ledger.Store
	// Auth decides who may read the pages (required).
	Auth *Auth
	// Log receives one line per request (method, path, status) and the
	// failures of queries; nil discards.
	Log *slog.Logger
	// AuditTopic is the audit topic whose partitions are verified;
	// consent.audit when empty.
	AuditTopic string
	// SourceTopics are the input topics whose completeness the overview
	// sums up; customer.events when empty.
	SourceTopics []string
	// Sealer, optional, reports the sealer's problems.
	Sealer SealStatus
	// Offsets, optional, gives the expected ranges of completeness.
	Offsets TopicOffsets
	// LastIngest, optional, is when the ledger last wrote a batch.
	LastIngest func() time.Time
	// BreachSubjects caps the subjects a breach page lists (the count of
	// the rest is shown); 500 when 0.
	BreachSubjects int
	// QueryTimeout bounds each page's queries; 30 s when 0.
	QueryTimeout time.Duration
}

// Console serves the pages.
type Console struct {
	cfg   Config
	pages map[string]*template.Template
	mux   *http.ServeMux
	// verifying admits one verification at a time.
	verifying chan struct{}
}

// New checks cfg and parses the templates.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Auth == nil {
		return nil, errors.New("console: a store and an auth are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.AuditTopic == "" {
		cfg.AuditTopic = "consent.audit"
	}
	if len(cfg.SourceTopics) == 0 {
		cfg.SourceTopics = []string{"customer.events"}
	}
	if cfg.BreachSubjects <= 0 {
		cfg.BreachSubjects = 500
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 30 * time.Second
	}
	c := &Console{cfg: cfg, pages: map[string]*template.Template{}, verifying: make(chan struct{}, 1)}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	c.routes()
	return c, nil
}

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"tsp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"dash": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
	"join":  strings.Join,
	"hex":   func(b [32]byte) string { return strings.ToLower(hexString(b[:])) },
	"lower": strings.ToLower,
	"missing": func(r *ledger.CompletenessReport) int64 {
		var n int64
		for _, p := range r.Partitions {
			n += p.MissingOffsets
		}
		return n
	},
	"dups": func(r *ledger.CompletenessReport) int {
		n := 0
		for _, p := range r.Partitions {
			n += len(p.Duplicates)
		}
		return n
	},
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, x := range b {
		out[2*i], out[2*i+1] = digits[x>>4], digits[x&15]
	}
	return string(out)
}

// Handler is the console's HTTP handler: every response carries the
// security headers, every request is logged by method, path and status.
func (c *Console) Handler() http.Handler { return c.logged(secured(c.mux)) }

func (c *Console) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", http.FileServerFS(staticFS))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	m.HandleFunc("GET /login", c.loginForm)
	m.HandleFunc("POST /login", c.loginPost)
	m.HandleFunc("POST /logout", c.authed(c.logoutPost))
	m.HandleFunc("GET /{$}", c.authed(c.overview))
	m.HandleFunc("GET /subject", c.authed(c.subjectForm))
	m.HandleFunc("POST /subject", c.authed(c.subjectPost))
	m.HandleFunc("GET /breach", c.authed(c.breachForm))
	m.HandleFunc("POST /breach", c.authed(c.breachPost))
	m.HandleFunc("GET /completeness", c.authed(c.completeness))
	m.HandleFunc("GET /verification", c.authed(c.verification))
	m.HandleFunc("GET /policies", c.authed(c.policies))
	m.HandleFunc("/", c.authed(func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", page{Title: "Not found", Error: "There is no such page."})
	}))
	c.mux = m
}

// secured sets the security headers of every response.
func secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// logged logs method, path and status: never the query string, a form
// value, a header or a cookie.
func (c *Console) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		c.cfg.Log.Info("console request", "method", r.Method, "path", logPath(r.URL.Path), "status", sw.status,
			"duration_ms", time.Since(start).Milliseconds())
	})
}

// logPath is the path of a known page, else "other": a mistyped URL could
// hold anything.
func logPath(p string) string {
	switch p {
	case "/", "/login", "/logout", "/subject", "/breach", "/completeness", "/verification", "/policies", "/healthz", "/static/console.css":
		return p
	}
	return "other"
}

// authed refuses a request without a valid token or session with 401 and
// the login page, and a POST not from the console's own pages with 403.
func (c *Console) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.cfg.Auth.allow(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="consentgate console"`)
			c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Error: "Log in with a console token to read this page."})
			return
		}
		if r.Method == http.MethodPost && !sameOrigin(r, c.cfg.Auth.viaBearer(r)) {
			c.render(w, r, http.StatusForbidden, "error", page{Title: "Refused", Error: "This form was not sent from the console's own pages."})
			return
		}
		h(w, r)
	}
}

// page is what every template gets: the layout's title, the navigation
// state and an error, plus the page's own data.
type page struct {
	Title    string
	Nav      string
	LoggedIn bool
	Error    string
	Data     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := c.pages[name]
	p.LoggedIn = name != "login" && c.cfg.Auth.allow(r)
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.cfg.Log.Error("console template failed", "page", name, "error", err.Error())
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// failed shows a query's failure without its details (they may name the
// database) and logs the error for the operator.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.cfg.Log.Warn("console query failed", "page", logPath(r.URL.Path), "query", what, "error", err.Error())
	status := http.StatusInternalServerError
	msg := "The ledger could not answer (" + what + "). The ledger's logs say why."
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
		msg = "The ledger did not answer in time (" + what + ")."
	}
	c.render(w, r, status, "error", page{Title: "Error", Error: msg})
}

func (c *Console) queryCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), c.cfg.QueryTimeout)
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", page{Title: "Log in"})
}

func (c *Console) loginPost(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r, false) {
		c.render(w, r, http.StatusForbidden, "login", page{Title: "Log in", Error: "This form was not sent from the console's own pages."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	ck, ok := c.cfg.Auth.login(r.PostFormValue("token"), r.TLS != nil)
	if !ok {
		c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Error: "That token is not one of the console's."})
		return
	}
	http.SetCookie(w, ck)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logoutPost(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, c.cfg.Auth.logout(r, r.TLS != nil))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
