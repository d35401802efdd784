package browsertest_test

import (
	"bytes"
	"fmt"
	"html"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/browsertest"
)

const token = "test-token-7f3a"

// site is a small console-like site: a home page with a link and a form,
// a page that echoes the form, and a page that needs the bearer token.
func site(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, title, body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>%s</title></head><body>%s</body></html>", title, body)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Home", `<h1>Console</h1>
<p><a id="to-about" href="/about">About</a></p>
<form id="search" action="/search" method="get">
  <input id="q" name="q" type="text">
  <select id="kind" name="kind"><option value="subject">subject</option><option value="stream">stream</option></select>
  <button type="submit">Search</button>
</form>
<div style="height:2000px">tall, so the full-page screenshot is taller than the window</div>
<p id="bottom">bottom of the page</p>`)
	})
	mux.HandleFunc("GET /about", func(w http.ResponseWriter, r *http.Request) {
		page(w, "About", `<h1 id="about">About this console</h1>`)
	})
	mux.HandleFunc("GET /search", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Results", `<p id="result">searched `+html.EscapeString(r.URL.Query().Get("kind"))+` for `+html.EscapeString(r.URL.Query().Get("q"))+`</p>`)
	})
	mux.HandleFunc("GET /secret", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `<!doctype html><html><body><p id="denied">token required</p></body></html>`)
			return
		}
		page(w, "Secret", `<p id="secret">the token was accepted</p>`)
	})
	mux.HandleFunc("GET /hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestBrowser(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	t.Setenv(browsertest.ArtifactsEnv, dir)
	srv := site(t)
	b := browsertest.New(t)

	if status := b.Open(srv.URL+"/", nil); status != http.StatusOK {
		t.Fatalf("home: status %d, want 200", status)
	}
	if got := b.Title(); got != "Home" {
		t.Errorf("title %q, want Home", got)
	}
	if got := b.Text("h1"); got != "Console" {
		t.Errorf("h1 %q, want Console", got)
	}
	// A screenshot of the whole page, taller than the window.
	shot := b.Screenshot("home")
	if filepath.Dir(shot) != dir {
		t.Errorf("screenshot %s not in %s", shot, dir)
	}
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG: starts with % x", data[:min(8, len(data))])
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	if h := img.Bounds().Dy(); h < 2000 {
		t.Errorf("screenshot is %d pixels high: not the full page (over 2000)", h)
	}

	// A link.
	if status := b.ClickAndWait("#to-about"); status != http.StatusOK {
		t.Fatalf("about: status %d", status)
	}
	if got := b.Text("#about"); got != "About this console" {
		t.Errorf("about page shows %q", got)
	}
	if !strings.HasSuffix(b.Location(), "/about") {
		t.Errorf("location %s, want .../about", b.Location())
	}

	// A form.
	b.Open(srv.URL+"/", nil)
	b.SetValue("#q", "subject <42>")
	b.SetValue("#kind", "stream")
	if got := b.Value("#q"); got != "subject <42>" {
		t.Errorf("field value %q", got)
	}
	if status := b.Submit("#search"); status != http.StatusOK {
		t.Fatalf("search: status %d", status)
	}
	if got := b.Text("#result"); got != "searched stream for subject <42>" {
		t.Errorf("result %q", got)
	}

	// The bearer header: refused without it, shown with it, and not sent
	// again after an Open without headers.
	if status := b.Open(srv.URL+"/secret", nil); status != http.StatusUnauthorized {
		t.Errorf("secret without token: status %d, want 401", status)
	}
	if got := b.Text("#denied"); got != "token required" {
		t.Errorf("401 page shows %q", got)
	}
	if b.Exists("#secret") {
		t.Error("the secret is shown without the token")
	}
	if status := b.Open(srv.URL+"/secret", map[string]string{"Authorization": "Bearer " + token}); status != http.StatusOK {
		t.Fatalf("secret with token: status %d, want 200", status)
	}
	if got := b.Text("#secret"); got != "the token was accepted" {
		t.Errorf("secret page shows %q", got)
	}
	b.Screenshot("secret")
	if status := b.Open(srv.URL+"/secret", nil); status != http.StatusUnauthorized {
		t.Errorf("secret after Open without headers: status %d, want 401", status)
	}
	t.Logf("self-test took %v", time.Since(start).Round(time.Millisecond))
}

// TestTimeout checks that a page that never answers fails the action
// within the timeout instead of hanging the test. The failure is caught
// by catcher, which stops the goroutine at Fatal as testing does.
func TestTimeout(t *testing.T) {
	srv := site(t)
	c := &catcher{TB: t}
	b := browsertest.New(c)
	b.SetTimeout(1500 * time.Millisecond)
	start := time.Now()
	msg := c.fatalOf(func() { b.Open(srv.URL+"/hang", nil) })
	took := time.Since(start)
	if !strings.Contains(msg, "not done within 1.5s") {
		t.Errorf("failure message %q does not say the action timed out", msg)
	}
	if took > 5*time.Second {
		t.Errorf("a hung page took %v to fail, want about 1.5s", took)
	}
	// The tab still works afterwards.
	b.SetTimeout(browsertest.DefaultTimeout)
	if status := b.Open(srv.URL+"/about", nil); status != http.StatusOK {
		t.Errorf("after a timeout: status %d", status)
	}
	msg = c.fatalOf(func() {
		b.SetTimeout(time.Second)
		b.Text("#no-such-element")
	})
	if !strings.Contains(msg, "#no-such-element") || !strings.Contains(msg, "not done within 1s") {
		t.Errorf("failure for a missing element: %q", msg)
	}
}

// catcher is the test's TB, except that while fatalOf runs, Fatal and
// Fatalf record the message and end fatalOf's goroutine instead of failing
// the test.
type catcher struct {
	testing.TB
	catching bool
	msg      string
}

func (c *catcher) Fatal(args ...any) {
	if !c.catching {
		c.TB.Helper()
		c.TB.Fatal(args...)
	}
	c.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (c *catcher) Fatalf(format string, args ...any) {
	if !c.catching {
		c.TB.Helper()
		c.TB.Fatalf(format, args...)
	}
	c.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalOf runs fn and returns the message it failed with ("" when it did
// not fail).
func (c *catcher) fatalOf(fn func()) string {
	c.catching, c.msg = true, ""
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	c.catching = false
	if c.msg == "" {
		c.TB.Errorf("expected a failure, got none")
	}
	return c.msg
}

func TestFindChromium(t *testing.T) {
	t.Setenv("CHROME_BIN", filepath.Join(t.TempDir(), "no-such-browser"))
	if p, err := browsertest.FindChromium(); err == nil || !strings.Contains(err.Error(), "CHROME_BIN") {
		t.Errorf("FindChromium with a missing CHROME_BIN = %q, %v; want an error naming CHROME_BIN", p, err)
	}
	bin := filepath.Join(t.TempDir(), "my-chrome")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHROME_BIN", bin)
	if p, err := browsertest.FindChromium(); err != nil || p != bin {
		t.Errorf("FindChromium with CHROME_BIN=%s = %q, %v", bin, p, err)
	}
}
