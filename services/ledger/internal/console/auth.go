package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/consentgate/consentgate/pkg/bearer"
)

// cookieName is the console's session cookie.
const cookieName = "consentgate_console"

// SessionTTL is how long a session of the login form lasts.
const SessionTTL = 8 * time.Hour

// maxSessions bounds the sessions kept in memory: beyond it the oldest is
// dropped (its user logs in again).
const maxSessions = 10000

// Auth decides who may read the console: a request needs
// "Authorization: Bearer <token>" with one of the tokens, or the session
// cookie the login form sets after one was typed in. The cookie holds a
// random session id drawn at login, never the token nor anything derived
// from it; the console keeps only the id's SHA-256 and its expiry, in
// memory, so a session ends at logout, after SessionTTL, or at a restart.
// The cookie is HttpOnly, SameSite=Strict, and Secure over TLS.
//
// (An earlier version set the HMAC of the token's digest: every login of a
// token got the same value, and logout could not end it, since the value
// stayed valid until the process restarted.)
type Auth struct {
	tokens bearer.Digests
	now    func() time.Time

	mu       sync.Mutex
	sessions map[[sha256.Size]byte]time.Time // SHA-256 of the session id → expiry
}

// NewAuth returns an Auth accepting the tokens whose digests are d (see
// bearer.ReadFile).
func NewAuth(d bearer.Digests) *Auth {
	return &Auth{tokens: d, now: time.Now, sessions: map[[sha256.Size]byte]time.Time{}}
}

// NewAuthForTokens is NewAuth for tokens given in clear (tests).
func NewAuthForTokens(tokens ...string) *Auth {
	d := make(bearer.Digests, len(tokens))
	for i, t := range tokens {
		d[i] = sha256.Sum256([]byte(t))
	}
	return NewAuth(d)
}

func (a *Auth) validSession(v string) bool {
	if len(v) != 64 {
		return false
	}
	h := sha256.Sum256([]byte(v))
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[h]
	if !ok {
		return false
	}
	if !a.now().Before(exp) {
		delete(a.sessions, h)
		return false
	}
	return true
}

// viaBearer reports whether r carries a valid bearer token.
func (a *Auth) viaBearer(r *http.Request) bool {
	return a.tokens.Match(bearer.FromHeader(r.Header.Get("Authorization")))
}

// allow reports whether r may read the console.
func (a *Auth) allow(r *http.Request) bool {
	if a.viaBearer(r) {
		return true
	}
	c, err := r.Cookie(cookieName)
	return err == nil && a.validSession(c.Value)
}

// login checks a token typed into the login form and returns the cookie of
// a new session.
func (a *Auth) login(token string, secure bool) (*http.Cookie, bool) {
	if !a.tokens.Match(token) {
		return nil, false
	}
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	v := hex.EncodeToString(id[:])
	now := a.now()
	a.mu.Lock()
	for h, exp := range a.sessions {
		if !now.Before(exp) {
			delete(a.sessions, h)
		}
	}
	for len(a.sessions) >= maxSessions {
		var oldest [sha256.Size]byte
		var oldestExp time.Time
		for h, exp := range a.sessions {
			if oldestExp.IsZero() || exp.Before(oldestExp) {
				oldest, oldestExp = h, exp
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[sha256.Sum256([]byte(v))] = now.Add(SessionTTL)
	a.mu.Unlock()
	return &http.Cookie{Name: cookieName, Value: v, Path: "/", MaxAge: int(SessionTTL / time.Second), HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode}, true
}

// logout ends the session of r's cookie, if any, and returns the cookie
// that clears it in the browser.
func (a *Auth) logout(r *http.Request, secure bool) *http.Cookie {
	if c, err := r.Cookie(cookieName); err == nil {
		h := sha256.Sum256([]byte(c.Value))
		a.mu.Lock()
		delete(a.sessions, h)
		a.mu.Unlock()
	}
	return &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}

// sameOrigin reports whether a form POST comes from the console's own
// pages. A browser says so in Sec-Fetch-Site (a header no page can set):
// only same-origin is accepted. Without it (an older browser), the Origin
// header, or the Referer when there is no Origin, must name the console's
// host; an Origin of "null" (a sandboxed page) is refused. A request with
// none of the three is a non-browser client and is accepted only when it
// authenticates with a bearer header (bearerOK): the session cookie is what
// a cross-site page could make a browser send. The SameSite cookie is the
// first lock against cross-site posts, this the second.
//
// Sec-Fetch-Site comes first because the console's pages are served with
// Referrer-Policy: no-referrer, and under that policy browsers send
// "Origin: null" and no Referer with the console's own form posts: the
// Origin check alone refuses every form of the console in Chromium.
func sameOrigin(r *http.Request, bearerOK bool) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return true
	case "":
	default: // cross-site, same-site, none (typed or bookmarked: never a form post of ours)
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
		if o == "" {
			return bearerOK
		}
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
