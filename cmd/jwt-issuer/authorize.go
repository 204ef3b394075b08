package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// codeTTL is how long an authorization code may wait for its exchange
// (RFC 6749 §4.1.2: "a maximum authorization code lifetime of 10 minutes
// is RECOMMENDED"; a browser needs seconds).
const codeTTL = time.Minute

// authRequest is an authorization request (RFC 6749 §4.1.1, RFC 7636
// §4.3, OpenID Connect Core §3.1.2.1), checked.
type authRequest struct {
	ClientID, RedirectURI, Scope, State, Nonce, Challenge string
}

// authCode is what a code stands for until it is exchanged once.
type authCode struct {
	req      authRequest
	user     string
	authTime time.Time
	expires  time.Time
	used     bool
	// refresh are the refresh tokens issued for this code: a second use of
	// the code revokes them (RFC 6749 §4.1.2).
	refresh []string
}

// refreshGrant is what a refresh token stands for.
type refreshGrant struct {
	clientID, user, scope string
	authTime, expires     time.Time
	code                  string // the code it descends from
}

// loginState holds the codes and refresh tokens of browser logins, in
// memory: a restart signs everyone out, which a development service may.
type loginState struct {
	users map[string]devUser

	mu      sync.Mutex
	codes   map[string]*authCode
	refresh map[string]*refreshGrant
}

func newLoginState(users map[string]devUser) *loginState {
	return &loginState{users: users, codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{}}
}

// sweep forgets expired codes and refresh tokens; callers hold mu.
func (l *loginState) sweep(now time.Time) {
	for k, c := range l.codes {
		if now.After(c.expires) {
			delete(l.codes, k)
		}
	}
	for k, g := range l.refresh {
		if now.After(g.expires) {
			delete(l.refresh, k)
		}
	}
}

// loginRoutes registers the browser login endpoints on mux, each
// instrumented like the others.
func (s *server) loginRoutes(mux *http.ServeMux) {
	mux.Handle("/authorize", s.metrics.instrument(endpointAuthorize, http.HandlerFunc(s.handleAuthorize)))
	mux.Handle("/end_session", s.metrics.instrument(endpointEndSession, http.HandlerFunc(s.handleEndSession)))
}

// Endpoint labels of the login endpoints.
const (
	endpointAuthorize  = "authorize"
	endpointEndSession = "end_session"
)

// handleAuthorize shows the login form (GET) and signs a user in (POST).
func (s *server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	// The form takes a password: never inside another site's frame.
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	var params url.Values
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		params = r.URL.Query()
	case http.MethodPost:
		form, err := readForm(w, r)
		if err != nil {
			s.authorizePage(w, http.StatusBadRequest, err.Error())
			return
		}
		params = form
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, ok := s.checkAuthRequest(w, params)
	if !ok {
		return
	}
	if r.Method != http.MethodPost {
		s.loginForm(w, http.StatusOK, req, "")
		return
	}
	u, ok := checkPassword(s.login.users, params.Get("username"), params.Get("password"))
	if !ok {
		s.log.Warn("login failed", "username", params.Get("username"), "client_id", req.ClientID)
		s.loginForm(w, http.StatusUnauthorized, req, "Unknown user or wrong password.")
		return
	}
	code := rand.Text()
	now := s.now()
	s.login.mu.Lock()
	s.login.sweep(now)
	s.login.codes[code] = &authCode{req: req, user: u.Name, authTime: now, expires: now.Add(codeTTL)}
	s.login.mu.Unlock()
	s.log.Info("user signed in", "username", u.Name, "client_id", req.ClientID)
	// RFC 9207: iss in the answer lets a client talking to several
	// providers tell which one answered.
	s.redirectBack(w, req, url.Values{"code": {code}})
}

// checkAuthRequest checks an authorization request. A bad client or
// redirect_uri gets an error page here, never a redirect (RFC 6749
// §4.1.2.1); any other error goes back to the client.
func (s *server) checkAuthRequest(w http.ResponseWriter, p url.Values) (authRequest, bool) {
	for _, name := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
		if len(p[name]) > 1 {
			s.authorizePage(w, http.StatusBadRequest, "parameter "+name+" is repeated")
			return authRequest{}, false
		}
	}
	req := authRequest{
		ClientID: p.Get("client_id"), RedirectURI: p.Get("redirect_uri"), Scope: p.Get("scope"),
		State: p.Get("state"), Nonce: p.Get("nonce"), Challenge: p.Get("code_challenge"),
	}
	if _, known := s.clients[req.ClientID]; !known {
		s.authorizePage(w, http.StatusBadRequest, "unknown client_id")
		return authRequest{}, false
	}
	if !s.redirectAllowed(req.RedirectURI) {
		s.authorizePage(w, http.StatusBadRequest, "redirect_uri is not registered (REDIRECT_URIS)")
		return authRequest{}, false
	}
	fail := func(code, desc string) (authRequest, bool) {
		s.redirectBack(w, req, url.Values{"error": {code}, "error_description": {desc}})
		return authRequest{}, false
	}
	switch {
	case p.Get("response_type") != "code":
		return fail("unsupported_response_type", "only response_type=code")
	case !validScope(req.Scope) || !strings.Contains(" "+req.Scope+" ", " openid "):
		return fail(errInvalidScope, "scope must include openid")
	case p.Get("code_challenge_method") != "S256":
		// RFC 9700 §2.1.1: PKCE is required, and plain is not offered.
		return fail(errInvalidRequest, "PKCE with code_challenge_method=S256 is required")
	case !validChallenge(req.Challenge):
		return fail(errInvalidRequest, "code_challenge must be 43 base64url characters")
	case len(req.State) > 512 || len(req.Nonce) > 512:
		return fail(errInvalidRequest, "state or nonce too long")
	}
	return req, true
}

// validChallenge: an S256 challenge is the base64url of 32 bytes.
func validChallenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// redirectBack sends the browser to the client's redirect_uri with q,
// state and iss added. 303: the answer to a POSTed form is a GET.
func (s *server) redirectBack(w http.ResponseWriter, req authRequest, q url.Values) {
	u, _ := url.Parse(req.RedirectURI) // checked by redirectAllowed
	merged := u.Query()
	for k, v := range q {
		merged[k] = v
	}
	if req.State != "" {
		merged.Set("state", req.State)
	}
	merged.Set("iss", s.cfg.IssuerURL)
	u.RawQuery = merged.Encode()
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusSeeOther)
}

// verifyPKCE checks a code_verifier against the S256 challenge (RFC 7636
// §4.6).
func verifyPKCE(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jwt-issuer: sign in</title>
<style>body{font-family:sans-serif;max-width:24em;margin:4em auto}label,input,button{display:block;margin:.4em 0}p.err{color:#b00}</style></head>
<body><h1>Sign in</h1>
<p>Development sign-in of jwt-issuer for <b>{{.Req.ClientID}}</b>. Never use it for real accounts.</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<form method="post" action="authorize">
<input type="hidden" name="client_id" value="{{.Req.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Req.RedirectURI}}">
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="scope" value="{{.Req.Scope}}">
<input type="hidden" name="state" value="{{.Req.State}}">
<input type="hidden" name="nonce" value="{{.Req.Nonce}}">
<input type="hidden" name="code_challenge" value="{{.Req.Challenge}}">
<input type="hidden" name="code_challenge_method" value="S256">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="submit" type="submit">Sign in</button>
</form></body></html>
`))

// loginForm renders the form for req, with an error line when msg is set.
func (s *server) loginForm(w http.ResponseWriter, status int, req authRequest, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginTemplate.Execute(w, struct {
		Req   authRequest
		Error string
	}{req, msg}); err != nil {
		s.log.Warn("render login form", "err", err)
	}
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jwt-issuer</title></head>
<body><p id="message">{{.}}</p></body></html>
`))

// authorizePage answers with a plain page: an error that must not go back
// to the client, or a notice such as "signed out".
func (s *server) authorizePage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = errorTemplate.Execute(w, msg)
}
