package intake

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// secretVolume lays out a folder as the kubelet mounts a Secret: the file
// is a symbolic link to ..data/<name>, ..data a link to a timestamped
// folder, and an update writes a new folder and swaps ..data atomically
// (rename of a new link over it); no signal reaches the process.
type secretVolume struct {
	t   *testing.T
	dir string
	n   int
}

func newSecretVolume(t *testing.T, name, content string) (*secretVolume, string) {
	v := &secretVolume{t: t, dir: t.TempDir()}
	v.update(name, content)
	path := filepath.Join(v.dir, name)
	if err := os.Symlink(filepath.Join("..data", name), path); err != nil {
		t.Fatal(err)
	}
	return v, path
}

func (v *secretVolume) update(name, content string) {
	v.n++
	ts := fmt.Sprintf("..2026_12_04_19_00_%02d.%d", v.n, v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		v.t.Fatal(err)
	}
	writeFile(v.t, filepath.Join(v.dir, ts), name, content)
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
}

// syncBuffer is a log sink safe for the watcher's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRevokedTokenStopsWorkingWhenTheSecretChanges: in Kubernetes a rotated
// Secret changes the mounted file and nobody sends SIGHUP. The intake sees
// the new content within its reload interval: a removed token is refused,
// a new one accepted. A new file that does not read fails closed (every
// request 503, not ready; the log says which line, never a token) until a
// good one replaces it. Before, the tokens were re-read on SIGHUP only: a
// revoked token kept granting consent until the pods restarted.
func TestRevokedTokenStopsWorkingWhenTheSecretChanges(t *testing.T) {
	const tokenC = "tok-c-0123456789abcdef0123456789"
	vol, path := newSecretVolume(t, "tokens", tokenA+"\n"+tokenB+"\n")
	auth, err := NewAuth(Config{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	auth.Watch(t.Context(), 50*time.Millisecond, slog.New(slog.NewJSONHandler(logs, nil)))
	h := newBrokerHandler(t, auth)
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := srv.Client()
	grant := func(id string) string { return strings.Replace(validGrant, `"c1"`, `"`+id+`"`, 1) }

	if code, _, ans := do(t, c, srv.URL, "Bearer "+tokenA, grant("w-1")); code != http.StatusAccepted {
		t.Fatalf("token A before the rotation: %d %v", code, ans)
	}
	// Token A leaked: the Secret now holds B and C.
	vol.update("tokens", tokenB+"\n"+tokenC+"\n")
	waitFor(t, "token A refused after the Secret changed", func() bool { return !auth.authorized(bearerReq(tokenA)) })
	if code, _, _ := do(t, c, srv.URL, "Bearer "+tokenA, grant("w-2")); code != http.StatusUnauthorized {
		t.Errorf("revoked token A: status %d, want 401", code)
	}
	if code, _, ans := do(t, c, srv.URL, "Bearer "+tokenC, grant("w-3")); code != http.StatusAccepted {
		t.Errorf("new token C: status %d, want 202 (%v)", code, ans)
	}
	if auth.Ready() != nil || auth.Tokens() != 2 {
		t.Errorf("after a good rotation: ready %v, %d tokens", auth.Ready(), auth.Tokens())
	}

	// A rotation with a typo (a token too short on line 2): no token is
	// trusted, B included, until the file is fixed.
	vol.update("tokens", tokenB+"\nshort-secret-x\n")
	waitFor(t, "the intake not ready after a bad file", func() bool { return auth.Ready() != nil })
	for _, tok := range []string{tokenA, tokenB, tokenC} {
		if code, _, _ := do(t, c, srv.URL, "Bearer "+tok, grant("w-bad-"+tok[:5])); code != http.StatusServiceUnavailable {
			t.Errorf("token %s… with a bad tokens file: status %d, want 503", tok[:5], code)
		}
	}
	if h.Unavailable.Load() != 3 {
		t.Errorf("%d answers counted unavailable, want 3", h.Unavailable.Load())
	}
	vol.update("tokens", tokenB+"\n")
	waitFor(t, "the intake ready again after the file was fixed", func() bool { return auth.Ready() == nil })
	if code, _, ans := do(t, c, srv.URL, "Bearer "+tokenB, grant("w-4")); code != http.StatusAccepted {
		t.Errorf("token B after the fix: status %d, want 202 (%v)", code, ans)
	}
	if code, _, _ := do(t, c, srv.URL, "Bearer "+tokenC, grant("w-5")); code != http.StatusUnauthorized {
		t.Errorf("token C, no longer in the file: status %d, want 401", code)
	}

	out := logs.String()
	if !strings.Contains(out, "line 2") || !strings.Contains(out, "credentials reloaded") {
		t.Errorf("log does not tell the reloads and the bad line:\n%s", out)
	}
	for _, secret := range []string{tokenA, tokenB, tokenC, "short-secret-x"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows a token:\n%s", out)
		}
	}
}

// An unchanged file is not re-read: a watcher that found the file
// unreadable once keeps the intake refused, and it recovers only when the
// content changes (here: the file comes back).
func TestWatchRereadsOnlyWhatChanged(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tokens", tokenA+"\n")
	auth, err := NewAuth(Config{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	auth.Watch(t.Context(), 20*time.Millisecond, slog.New(slog.NewJSONHandler(logs, nil)))
	time.Sleep(150 * time.Millisecond)
	if n := strings.Count(logs.String(), "reloaded"); n != 0 {
		t.Errorf("%d reloads of an unchanged file", n)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready once the file is gone", func() bool { return auth.Ready() != nil })
	if auth.authorized(bearerReq(tokenA)) {
		t.Error("token A still authorized with its file gone")
	}
	time.Sleep(150 * time.Millisecond)
	if n := strings.Count(logs.String(), "could not be re-read"); n != 1 {
		t.Errorf("the missing file was logged %d times, want once", n)
	}
	writeFile(t, dir, "tokens", tokenA+"\n")
	waitFor(t, "ready again once the file is back", func() bool { return auth.Ready() == nil })
	if !auth.authorized(bearerReq(tokenA)) {
		t.Error("token A refused once its file is back")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
