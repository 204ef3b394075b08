package login

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// testIdP is an OpenID provider on 127.0.0.1 that the tests can make
// misbehave: it signs real ES256 ID tokens, serves a real JWKS, keeps
// one-use codes bound to their PKCE challenge, and answers the refresh
// grant. Its authorization endpoint signs the user in at once (no form):
// the protocol tests are about the relying party.
type testIdP struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string
	key    *ecdsa.PrivateKey
	secret string

	mu       sync.Mutex
	codes    map[string]codeGrant
	refresh  map[string]string // refresh token -> sub
	tokenReq int               // token endpoint requests
	// Knobs, set by tests before the flow.
	edit        func(jwt.MapClaims) // changes the ID token's claims
	noRefresh   bool
	noEndSess   bool
	claims      jwt.MapClaims // extra claims of the user
	idTokenTTL  time.Duration
	refreshNoID bool              // the refresh grant answers without an id_token
	signWith    *ecdsa.PrivateKey // signs ID tokens instead of key, under its kid
	now         func() time.Time
}

type codeGrant struct {
	clientID, redirect, challenge, nonce string
}

const testClientID = "web-app"

func newTestIdP(t testing.TB) *testIdP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &testIdP{t: t, key: key, secret: "s3cret:with/odd+chars", codes: map[string]codeGrant{},
		refresh: map[string]string{}, idTokenTTL: 10 * time.Minute, now: time.Now,
		claims: jwt.MapClaims{"email": "alice@example.com", "name": "Alice", "groups": []string{"staff"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL
	return p
}

func (p *testIdP) discovery(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{
		"issuer":                           p.issuer,
		"authorization_endpoint":           p.issuer + "/authorize",
		"token_endpoint":                   p.issuer + "/token",
		"jwks_uri":                         p.issuer + "/jwks",
		"code_challenge_methods_supported": []string{"S256"},
	}
	if !p.noEndSess {
		doc["end_session_endpoint"] = p.issuer + "/logout"
	}
	_ = json.NewEncoder(w).Encode(doc)
}

func (p *testIdP) jwks(w http.ResponseWriter, _ *http.Request) {
	j, err := jwkset.NewJWKFromKey(p.key.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: "k1", ALG: jwkset.AlgES256, USE: jwkset.UseSig},
	})
	if err != nil {
		p.t.Error(err)
		return
	}
	_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{j.Marshal()}})
}

// authorize checks the request and answers with a code at once.
func (p *testIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("client_id") != testClientID || !strings.Contains(q.Get("scope"), "openid") {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = codeGrant{q.Get("client_id"), q.Get("redirect_uri"), q.Get("code_challenge"), q.Get("nonce")}
	p.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	back.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *testIdP) oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// token answers authorization_code and refresh_token grants.
func (p *testIdP) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenReq++
	id, secret, ok := r.BasicAuth()
	if id2, err := url.QueryUnescape(id); err == nil {
		id = id2
	}
	if s2, err := url.QueryUnescape(secret); err == nil {
		secret = s2
	}
	if !ok || id != testClientID || secret != p.secret {
		p.oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	var sub, nonce string
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		g, ok := p.codes[r.PostFormValue("code")]
		delete(p.codes, r.PostFormValue("code")) // one use
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || g.redirect != r.PostFormValue("redirect_uri") || g.challenge != base64.RawURLEncoding.EncodeToString(sum[:]) {
			p.oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		sub, nonce = "alice", g.nonce
	case "refresh_token":
		s, ok := p.refresh[r.PostFormValue("refresh_token")]
		delete(p.refresh, r.PostFormValue("refresh_token")) // rotating
		if !ok {
			p.oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		sub = s
	default:
		p.oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	resp := map[string]any{"access_token": "at-" + rand.Text(), "token_type": "Bearer", "expires_in": 300}
	if !(r.PostFormValue("grant_type") == "refresh_token" && p.refreshNoID) {
		resp["id_token"] = p.idToken(sub, nonce)
	}
	if !p.noRefresh {
		rt := "rt-" + rand.Text()
		p.refresh[rt] = sub
		resp["refresh_token"] = rt
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (p *testIdP) idToken(sub, nonce string) string {
	now := p.now()
	c := jwt.MapClaims{
		"iss": p.issuer, "sub": sub, "aud": testClientID,
		"iat": now.Unix(), "exp": now.Add(p.idTokenTTL).Unix(),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	for k, v := range p.claims {
		c[k] = v
	}
	if p.edit != nil {
		p.edit(c)
	}
	return p.sign(c)
}

func (p *testIdP) sign(c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "k1"
	key := p.key
	if p.signWith != nil {
		key = p.signWith
	}
	s, err := tok.SignedString(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

func (p *testIdP) tokenRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokenReq
}

// idVerifier is the sidecar's real verifier over the provider's JWKS. Its
// source accepts a second issuer too, so that the login's own issuer check
// is what refuses a token from it.
func idVerifier(t testing.TB, p *testIdP, now func() time.Time) func(context.Context, string) (verifier.Claims, error) {
	t.Helper()
	src := keys.NewRemoteSource(p.issuer+"/jwks", []string{p.issuer, otherIssuer}, nil)
	keys, err := keys.NewKeys(keys.KeyOptions{}, nil, slog.New(slog.DiscardHandler), src)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{Keys: keys, RequireExp: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v.VerifyToken
}

const otherIssuer = "https://other.example"

// writeFile writes content into a new file of the test's temp dir.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	keyA = "key-A-0123456789abcdef0123456789abcdef"
	keyB = "key-B-0123456789abcdef0123456789abcdef"
)

// testOptions are options for p with cookie keys keys (one per line).
func testOptions(t testing.TB, p *testIdP, keys ...string) Options {
	if len(keys) == 0 {
		keys = []string{keyA}
	}
	return Options{
		Issuer:           p.issuer,
		ClientID:         testClientID,
		ClientSecretFile: writeFile(t, "secret", p.secret+"\n"),
		CookieKeyFile:    writeFile(t, "keys", "# current first\n"+strings.Join(keys, "\n")+"\n"),
		Refresh:          true,
		KeepClaims:       []string{"email", "groups"},
		KeepIDToken:      true,
		VerifyIDToken:    idVerifier(t, p, nil),
	}
}

// upstream records what reaches the protected application.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>app</title><p id=sub>"+r.Header.Get("X-Sub")+"</p><p id=email>"+r.Header.Get("X-Email")+"</p>\n")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// pages counts the requests for path (a browser also asks for
// /favicon.ico after each page).
func (u *upstream) pages(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, r := range u.seen {
		if r.URL.Path == path {
			n++
		}
	}
	return n
}

// lastPage is the last request for path.
func (u *upstream) lastPage(path string) *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.seen) - 1; i >= 0; i-- {
		if u.seen[i].URL.Path == path {
			return u.seen[i]
		}
	}
	return nil
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

// gate composes the login in front of an upstream the way the proxy will:
// its own paths first, then a session's claims as headers, then a login
// for a browser navigation, and the usual 401 for everything else.
func gate(l *Login, up *upstream) http.Handler {
	target, _ := url.Parse(up.srv.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.Owns(r) {
			l.Handler().ServeHTTP(w, r)
			return
		}
		for _, h := range []string{"X-Sub", "X-Email", "X-Groups"} {
			r.Header.Del(h) // clients cannot forge claims
		}
		c, ok := l.Session(w, r)
		if !ok {
			if l.Wants(r) {
				l.Start(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="jwt-sidecar"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		removeCookie(r, c.From.Name)
		r.Header.Set("X-Sub", c.Subject)
		if v, ok := c.Lookup("email"); ok {
			r.Header.Set("X-Email", v.(string))
		}
		rp.ServeHTTP(w, r)
	})
}

// removeCookie drops the cookie name from r, as the proxy's stripToken does.
func removeCookie(r *http.Request, name string) {
	var kept []string
	for _, c := range r.Cookies() {
		if c.Name != name {
			kept = append(kept, c.Name+"="+c.Value)
		}
	}
	r.Header.Del("Cookie")
	if len(kept) > 0 {
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
}

// rig is a login behind a TLS listener, with its provider and upstream.
type rig struct {
	idp    *testIdP
	up     *upstream
	login  *Login
	srv    *httptest.Server
	client *http.Client // a browser: cookie jar, does not follow redirects
	rec    *countingRecorder
}

func newRig(t *testing.T, edit func(*Options)) *rig {
	t.Helper()
	r := &rig{idp: newTestIdP(t), up: newUpstream(t), rec: newCountingRecorder()}
	o := testOptions(t, r.idp)
	o.Recorder = r.rec
	if edit != nil {
		edit(&o)
	}
	if o.Now != nil {
		// The provider and the verifier share the login's clock.
		r.idp.now = o.Now
		o.VerifyIDToken = idVerifier(t, r.idp, o.Now)
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.login = l
	r.srv = httptestTLS(t, gate(l, r.up))
	r.client = browserClient(t, r.srv)
	return r
}

// browserClient is a client with a cookie jar that trusts srv's certificate
// and does not follow redirects, so a test sees each step.
func browserClient(t testing.TB, srv *httptest.Server) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	tr := c.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs}
	return &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// navigate sends a browser navigation (GET, Accept: text/html).
func (r *rig) navigate(t testing.TB, target string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// authorize follows the redirect to the provider and returns the callback
// URL it sends back.
func (r *rig) authorize(t testing.TB, loginRedirect *http.Response) string {
	t.Helper()
	if loginRedirect.StatusCode != http.StatusFound {
		t.Fatalf("status = %d, want 302 to the provider", loginRedirect.StatusCode)
	}
	loc := loginRedirect.Header.Get("Location")
	if !strings.HasPrefix(loc, r.idp.issuer+"/authorize?") {
		t.Fatalf("Location = %q, want the provider's authorization endpoint", loc)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(loc) // the provider's own cookies do not matter here
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("the provider answered %d, want a redirect back", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// signIn runs a whole login for path and returns the callback answer.
func (r *rig) signIn(t testing.TB, path string) *http.Response {
	t.Helper()
	cb := r.authorize(t, r.navigate(t, r.srv.URL+path))
	return r.navigate(t, cb)
}

// countingRecorder counts what the login records.
type countingRecorder struct {
	mu                  sync.Mutex
	started, completed  int
	failed              map[Reason]int
	refreshed, refFails int
}

func newCountingRecorder() *countingRecorder { return &countingRecorder{failed: map[Reason]int{}} }

func (c *countingRecorder) LoginStarted()   { c.mu.Lock(); c.started++; c.mu.Unlock() }
func (c *countingRecorder) LoginCompleted() { c.mu.Lock(); c.completed++; c.mu.Unlock() }
func (c *countingRecorder) LoginFailed(r Reason) {
	c.mu.Lock()
	c.failed[r]++
	c.mu.Unlock()
}
func (c *countingRecorder) SessionRefreshed(outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if outcome == RefreshOK {
		c.refreshed++
	} else {
		c.refFails++
	}
}

func (c *countingRecorder) failures(r Reason) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed[r]
}

// httptestTLS serves h over TLS on 127.0.0.1 until the test ends.
func httptestTLS(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	// Clients of finished subtests hang up mid-handshake: not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}
