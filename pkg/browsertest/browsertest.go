// Package browsertest drives a real headless Chromium from tests, for the
// pages the project serves (the compliance console). It finds the browser,
// starts it with flags that work on a closed network and as root, gives
// every action its own timeout so that a hung page fails the test instead of
// hanging it, and keeps full-page screenshots as test artefacts.
//
//	b := browsertest.New(t)          // skips (or fails under CI) without Chromium
//	b.Open(srv.URL+"/subjects", map[string]string{"Authorization": "Bearer " + token})
//	if got := b.Text("h1"); got != "Subjects" { ... }
//	b.Screenshot("subjects")          // <repo>/.artifacts/screenshots/<Test>-subjects.png
//
// Selectors are CSS selectors (document.querySelector); an action waits for
// its element to be there (Text and Click: visible) until the action's
// timeout (DefaultTimeout, or SetTimeout).
//
// The browser is found at $CHROME_BIN, else /usr/bin/chromium, else
// chromium, chromium-browser, google-chrome or google-chrome-stable on PATH.
// Without one, New fails the test when the environment variable CI is set
// (.ci/run installs the Debian package chromium) and skips it otherwise.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/consentgate/consentgate/pkg/proctest"
)

// DefaultTimeout bounds every action of a Browser (a navigation, a wait for
// an element, a screenshot) unless SetTimeout changes it.
const DefaultTimeout = 10 * time.Second

// startTimeout bounds the start of the browser.
const startTimeout = 30 * time.Second

// ArtifactsEnv names the environment variable with the folder that
// Screenshot writes to; the default is <repository root>/.artifacts/screenshots.
const ArtifactsEnv = "BROWSER_ARTIFACTS_DIR"

// Browser is one headless Chromium with one tab, owned by a test. Its
// methods fail the test (t.Fatal) on any error, so they must be called from
// the test's goroutine. It is closed when the test ends.
type Browser struct {
	t       testing.TB
	ctx     context.Context // the tab
	timeout time.Duration
}

// candidates are the browser executables New looks for, in order, after
// $CHROME_BIN.
var candidates = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// FindChromium returns the path of the browser New would start, or an error
// that says what was looked for.
func FindChromium() (string, error) {
	if p := os.Getenv("CHROME_BIN"); p != "" {
		if found, err := exec.LookPath(p); err == nil {
			return found, nil
		}
		return "", fmt.Errorf("CHROME_BIN=%s is not an executable", p)
	}
	for _, c := range candidates {
		if found, err := exec.LookPath(c); err == nil {
			return found, nil
		}
	}
	return "", fmt.Errorf("no Chromium found (looked for $CHROME_BIN and %s); install it with `apt-get install chromium`", strings.Join(candidates, ", "))
}

// Flags are the command-line switches New starts the browser with, besides
// a fresh --user-data-dir: headless, no sandbox (tests run as root in
// containers), no GPU, and nothing that would reach out to the network on
// its own (QUIC, background networking, component updates, sync).
var Flags = []string{
	"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync",
	"no-default-browser-check", "disable-dev-shm-usage", "mute-audio",
	"disable-extensions", "disable-default-apps", "hide-scrollbars",
}

// New starts a headless Chromium for t and closes it (and removes its
// profile) when t ends. Without a browser it fails t when CI is set, and
// skips t otherwise.
func New(t testing.TB) *Browser {
	t.Helper()
	path, err := FindChromium()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browsertest: %v (CI is set, so a missing browser is a failure)", err)
		}
		t.Skipf("browsertest: %v; skipping the browser test", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	for _, f := range Flags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	var out lockedBuffer
	opts = append(opts, chromedp.CombinedOutput(&out))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(format string, args ...any) {
		t.Logf("browsertest: chromedp: "+format, args...)
	}))
	t.Cleanup(func() {
		cancelCtx() // closes the tab and the browser
		cancelAlloc()
	})
	// The first action starts the browser and binds it to ctx, which has
	// no deadline; the wait for it has one of its own.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(startTimeout):
		cancelCtx()
		err = fmt.Errorf("not started within %v", startTimeout)
	}
	if err != nil {
		t.Fatalf("browsertest: start %s: %v\nbrowser output:\n%s", path, err, out.String())
	}
	b := &Browser{t: t, ctx: ctx, timeout: DefaultTimeout}
	if err := b.do("enable the network domain", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	return b
}

// SetTimeout changes the bound of every later action.
func (b *Browser) SetTimeout(d time.Duration) { b.timeout = d }

// Context returns the chromedp context of the tab, for actions this
// package has no helper for; bound them with context.WithTimeout.
func (b *Browser) Context() context.Context { return b.ctx }

// do runs steps within the action timeout; what names the action in the
// error.
func (b *Browser) do(what string, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.recover(err)
		return actionError(what, b.timeout, err)
	}
	return nil
}

// recover stops a page load that an action timed out on, so that the tab
// takes the next action.
func (b *Browser) recover(err error) {
	if !errors.Is(err, context.DeadlineExceeded) {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	_ = chromedp.Do(ctx, chromedp.Stop())
}

// run runs one action with a value within the action timeout.
func run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.recover(err)
		b.t.Fatal(actionError(what, b.timeout, err))
	}
	return v
}

func actionError(what string, timeout time.Duration, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("browsertest: %s: not done within %v: %w", what, timeout, err)
	}
	return fmt.Errorf("browsertest: %s: %w", what, err)
}

// Open navigates the tab to url, sending headers (for example
// "Authorization": "Bearer ...") with this and every later request of the
// tab until the next Open, and returns the HTTP status of the document. A
// nil or empty headers sends none. Header values are not logged.
func (b *Browser) Open(url string, headers map[string]string) int {
	b.t.Helper()
	h := network.Headers{}
	for k, v := range headers {
		h[k] = v
	}
	if err := b.do("set the extra HTTP headers", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return err
	})); err != nil {
		b.t.Fatal(err)
	}
	resp := run(b, "open "+url, chromedp.NavigateResponse(url))
	if resp == nil {
		b.t.Fatalf("browsertest: open %s: no response", url)
	}
	return int(resp.Status)
}

// Location returns the URL of the page shown.
func (b *Browser) Location() string {
	b.t.Helper()
	return run(b, "read the location", chromedp.Location())
}

// Title returns the title of the page shown.
func (b *Browser) Title() string {
	b.t.Helper()
	return run(b, "read the title", chromedp.Title())
}

// Text returns the visible text of the first element matching the CSS
// selector, waiting until it is visible.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "read the text of "+selector, chromedp.Text(chromedp.CSS(selector), chromedp.NodeVisible)))
}

// Texts returns the visible text of every element matching the CSS
// selector, waiting until there is at least one.
func (b *Browser) Texts(selector string) []string {
	b.t.Helper()
	nodes := run(b, "find "+selector, chromedp.Nodes(chromedp.CSSAll(selector), chromedp.NodeReady))
	ids := make([]cdp.NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.NodeID
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, strings.TrimSpace(run(b, "read the text of "+selector, chromedp.Text(chromedp.NodeIDs{id}, chromedp.NodeReady))))
	}
	return out
}

// Exists reports whether an element matches the CSS selector now, without
// waiting.
func (b *Browser) Exists(selector string) bool {
	b.t.Helper()
	return run(b, "look for "+selector, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", selector)))
}

// WaitVisible waits until an element matching the CSS selector is visible,
// for example the page a click leads to.
func (b *Browser) WaitVisible(selector string) {
	b.t.Helper()
	if err := b.do("wait for "+selector, chromedp.WaitVisible(chromedp.CSS(selector))); err != nil {
		b.t.Fatal(err)
	}
}

// Click clicks the first element matching the CSS selector once it is
// visible. It does not wait for a navigation the click starts: use
// ClickAndWait, or WaitVisible on what the next page shows.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	if err := b.do("click "+selector, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible)); err != nil {
		b.t.Fatal(err)
	}
}

// ClickAndWait clicks the element and waits for the page it navigates to,
// returning that document's HTTP status.
func (b *Browser) ClickAndWait(selector string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
	if err != nil {
		b.recover(err)
		b.t.Fatal(actionError("click "+selector+" and wait for the page", b.timeout, err))
	}
	return int(resp.Status)
}

// SetValue sets the value of the form field matching the CSS selector.
func (b *Browser) SetValue(selector, value string) {
	b.t.Helper()
	if err := b.do("set the value of "+selector, chromedp.SetValue(chromedp.CSS(selector), value, chromedp.NodeReady)); err != nil {
		b.t.Fatal(err)
	}
}

// Value returns the value of the form field matching the CSS selector.
func (b *Browser) Value(selector string) string {
	b.t.Helper()
	return run(b, "read the value of "+selector, chromedp.Value(chromedp.CSS(selector), chromedp.NodeReady))
}

// Submit submits the form of the element matching the CSS selector (the
// form itself or one of its fields) and waits for the page the form leads
// to, returning that document's HTTP status.
func (b *Browser) Submit(selector string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Submit(chromedp.CSS(selector), chromedp.NodeReady))
	if err != nil {
		b.recover(err)
		b.t.Fatal(actionError("submit "+selector, b.timeout, err))
	}
	return int(resp.Status)
}

// Screenshot writes a full-page PNG of the tab to the artefact folder
// ($BROWSER_ARTIFACTS_DIR, default <repository root>/.artifacts/screenshots)
// as <test name>-<name>.png, logs its path and returns it.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png := run(b, "take a screenshot", chromedp.FullScreenshot(100))
	dir := ArtifactsDir(b.t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatalf("browsertest: screenshot folder: %v", err)
	}
	path := filepath.Join(dir, fileName(b.t.Name()+"-"+name)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("browsertest: write screenshot: %v", err)
	}
	b.t.Logf("browsertest: screenshot %s", path)
	return path
}

// ArtifactsDir returns the folder screenshots go to.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(ArtifactsEnv); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	return filepath.Join(proctest.RepoRoot(t), ".artifacts", "screenshots")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName makes a test name (with its / of subtests) a file name.
func fileName(s string) string {
	return strings.Trim(unsafeName.ReplaceAllString(s, "_"), "_.")
}

// lockedBuffer keeps the browser's output (the first 64 KiB) for the
// start error.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 64<<10 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
