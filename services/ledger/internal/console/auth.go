package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	"github.com/consentgate/consentgate/pkg/bearer"
)

// cookieName is the console's session cookie.
const cookieName = "consentgate_console"

// Auth decides who may read the console: a request needs
// "Authorization: Bearer <token>" with one of the tokens, or the session
// cookie the login form sets after one was typed in. The cookie holds an
// HMAC of the token's digest under a key drawn at start, never the token:
// it is worthless after a restart and tells nothing about the token. It is
// HttpOnly, SameSite=Strict, and Secure over TLS.
type Auth struct {
	tokens   bearer.Digests
	key      [32]byte
	sessions [][sha256.Size]byte // SHA-256 of each token's session value
}

// NewAuth returns an Auth accepting the tokens whose digests are d (see
// bearer.ReadFile).
func NewAuth(d bearer.Digests) *Auth {
	a := &Auth{tokens: d}
	if _, err := rand.Read(a.key[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range d {
		a.sessions = append(a.sessions, sha256.Sum256([]byte(a.session(d[i]))))
	}
	return a
}

// NewAuthForTokens is NewAuth for tokens given in clear (tests).
func NewAuthForTokens(tokens ...string) *Auth {
	d := make(bearer.Digests, len(tokens))
	for i, t := range tokens {
		d[i] = sha256.Sum256([]byte(t))
	}
	return NewAuth(d)
}

func (a *Auth) session(digest [sha256.Size]byte) string {
	m := hmac.New(sha256.New, a.key[:])
	m.Write(digest[:])
	return hex.EncodeToString(m.Sum(nil))
}

func (a *Auth) validSession(v string) bool {
	if v == "" {
		return false
	}
	h := sha256.Sum256([]byte(v))
	match := 0
	for i := range a.sessions {
		match |= subtle.ConstantTimeCompare(h[:], a.sessions[i][:])
	}
	return match == 1
}

// allow reports whether r may read the console.
func (a *Auth) allow(r *http.Request) bool {
	if a.tokens.Match(bearer.FromHeader(r.Header.Get("Authorization"))) {
		return true
	}
	c, err := r.Cookie(cookieName)
	return err == nil && a.validSession(c.Value)
}

// login checks a token typed into the login form and returns the session
// cookie to set.
func (a *Auth) login(token string, secure bool) (*http.Cookie, bool) {
	if !a.tokens.Match(token) {
		return nil, false
	}
	v := a.session(sha256.Sum256([]byte(token)))
	return &http.Cookie{Name: cookieName, Value: v, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}, true
}

// sameOrigin reports whether a form POST comes from the console's own pages
// (its Origin header, or its Referer when a browser sends no Origin). The
// SameSite cookie is the first lock against cross-site posts, this the
// second.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
		if o == "" {
			return true // a browser posting cross-site sends one of the two
		}
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}
