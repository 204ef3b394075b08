package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// loginRig is the real jwt-sidecar with browser login in front of a
// recording upstream, against a real jwt-issuer process.
type loginRig struct {
	issuer string
	idp    *proctest.Process
	s      *sidecar
	up     *seenUpstream
	base   string // http://LISTEN_ADDR
}

// seenUpstream records every request that reaches the application.
type seenUpstream struct {
	mu   sync.Mutex
	seen []*http.Request
}

func (u *seenUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

func (u *seenUpstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

// startIssuer builds and runs jwt-issuer with a browser client (web-app),
// an API client (api-client) and the user alice with extra claims.
func startIssuer(t *testing.T) (string, *proctest.Process) {
	t.Helper()
	bin, cleanup, err := proctest.Build("../jwt-issuer", "jwt-issuer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	addr := proctest.FreeAddr(t)
	issuer := "http://" + addr
	users := filepath.Join(t.TempDir(), "users.json")
	writeTestFile(t, users, `[{"username":"alice","password":"wonderland","claims":{"email":"alice@example.com","groups":["staff","dev"]}}]`)
	idp := proctest.Start(t, bin, []string{
		"LISTEN_ADDR=" + addr, "ISSUER_URL=" + issuer, "SIGNING_ALG=ES256", "AUDIENCE=demo-api",
		"CLIENTS=web-app:web-secret,api-client:api-secret", "USERS=dev:dev", "USERS_FILE=" + users, "TOKEN_TTL=10m",
	})
	idp.WaitFor(t, issuer+"/healthz", http.StatusOK)
	return issuer, idp
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newLoginRig(t *testing.T, configFile bool) *loginRig {
	t.Helper()
	issuer, idp := startIssuer(t)
	up := &seenUpstream{}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.mu.Lock()
		up.seen = append(up.seen, r.Clone(context.Background()))
		up.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>app</title><p id=sub>"+r.Header.Get("X-Sub")+"</p><p id=email>"+r.Header.Get("X-Email")+"</p>\n")
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	secret, cookieKeys := filepath.Join(dir, "secret"), filepath.Join(dir, "cookie-keys")
	writeTestFile(t, secret, "web-secret\n")
	writeTestFile(t, cookieKeys, "# current first\nkey-A-0123456789abcdef0123456789abcdef\n")
	env := map[string]string{
		"UPSTREAM_URL":             app.URL,
		"OIDC_ISSUER_URL":          issuer,
		"ISSUERS":                  issuer,
		"AUDIENCES":                "demo-api",
		"CLAIMS_TO_HEADERS":        "sub=X-Sub,email=X-Email,groups=X-Groups",
		"PUBLIC_PATHS":             "/public/*",
		"LOGIN_CLIENT_ID":          "web-app",
		"LOGIN_CLIENT_SECRET_FILE": secret,
		"LOGIN_COOKIE_KEY_FILE":    cookieKeys,
		"LOGIN_PLAIN_HTTP":         "true",
		// The ID token rides along for id_token_hint: the issuer then ends
		// the user's session at sign-out.
		"LOGIN_KEEP_ID_TOKEN": "true",
	}
	if configFile {
		// The same provider and login from CONFIG_FILE, with rules whose
		// claim requirements a session must meet like a token.
		file := filepath.Join(dir, "policy.yaml")
		writeTestFile(t, file, `providers:
  - name: web
    oidc_issuer_url: `+issuer+`
    audiences: [demo-api]
    claims_to_headers: {sub: X-Sub, email: X-Email, groups: X-Groups}
    login:
      client_id: web-app
      client_secret_file: `+secret+`
      cookie_key_file: `+cookieKeys+`
      plain_http: true
rules:
  - name: public
    match: {prefix: /public/}
    require: public
  - name: admins
    match: {prefix: /admin/}
    require: web
    claims: {groups: admin}
  - name: staff
    match: {prefix: /staff/}
    require: web
    claims: {groups: staff}
default: {require: web}
`)
		env = map[string]string{"UPSTREAM_URL": app.URL, "CONFIG_FILE": file, "ISSUERS": "", "AUDIENCES": ""}
	}
	s := startSidecar(t, env)
	s.waitFor(t, "/readyz", http.StatusOK)
	return &loginRig{issuer: issuer, idp: idp, s: s, up: up, base: "http://" + s.listen}
}

// browser is a client with a cookie jar that does not follow redirects, so
// the test sees every step.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// send makes one request; edit shapes it (a navigation, an XHR, ...).
func send(t *testing.T, c *http.Client, method, target string, edit func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// navigation makes r what a browser sends when the user opens a page.
func navigation(r *http.Request) {
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
}

// signIn follows the sidecar's redirect to the issuer, fills in its login
// form as alice and returns the callback URL the issuer sends back.
func (rg *loginRig) signIn(t *testing.T, toLogin *http.Response) string {
	t.Helper()
	if toLogin.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302 to the issuer", toLogin.StatusCode)
	}
	loc, err := url.Parse(toLogin.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), rg.issuer+"/authorize?") {
		t.Fatalf("Location %q, want the issuer's authorization endpoint", toLogin.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("nonce") == "" || q.Get("client_id") != "web-app" {
		t.Fatalf("authorization request %v lacks PKCE, state or nonce", q)
	}
	// The form posts the request's parameters back with the credentials.
	form := url.Values{}
	for k, v := range q {
		form[k] = v
	}
	form.Set("username", "alice")
	form.Set("password", "wonderland")
	noFollow := browser(t)
	resp, err := noFollow.PostForm(rg.issuer+"/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the issuer's form answered %d, want a redirect back to the callback", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// TestLoginProcess drives the real sidecar's browser login with the real
// issuer: who is sent to sign in and who gets 401, the callback, the
// session reaching the upstream as claim headers, bearer clients beside
// it, every refusal kept from the upstream, sign-out and the metrics.
func TestLoginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs jwt-issuer")
	}
	rg := newLoginRig(t, false)
	c := browser(t)

	// API clients, XHR and form posts without a token get the RFC 6750
	// 401, never a redirect; none reaches the upstream.
	refusals := []struct {
		name, method string
		edit         func(*http.Request)
	}{
		{"curl", http.MethodGet, nil},
		{"json client", http.MethodGet, func(r *http.Request) { r.Header.Set("Accept", "application/json") }},
		{"xhr", http.MethodGet, func(r *http.Request) { navigation(r); r.Header.Set("X-Requested-With", "XMLHttpRequest") }},
		{"fetch", http.MethodGet, func(r *http.Request) { r.Header.Set("Accept", "text/html"); r.Header.Set("Sec-Fetch-Mode", "cors") }},
		{"post", http.MethodPost, navigation},
	}
	for _, tt := range refusals {
		resp := send(t, c, tt.method, rg.base+"/app", tt.edit)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="jwt-sidecar"` {
			t.Errorf("%s: status %d, challenge %q; want 401 with a bare Bearer challenge", tt.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if n := rg.up.count(); n != 0 {
		t.Fatalf("the upstream saw %d requests without a token or session, want 0", n)
	}

	// A public path is served to a browser without any login.
	if resp := send(t, c, http.MethodGet, rg.base+"/public/x", navigation); resp.StatusCode != http.StatusOK {
		t.Errorf("public path: status %d, want 200", resp.StatusCode)
	}
	public := rg.up.count()

	// A navigation is sent to the issuer; signing in comes back through the
	// callback to the page asked for, with a session cookie.
	callback := rg.signIn(t, send(t, c, http.MethodGet, rg.base+"/app?tab=2", navigation))
	if !strings.HasPrefix(callback, rg.base+"/oauth2/callback?") {
		t.Fatalf("the issuer sends the browser to %q, want the sidecar's callback", callback)
	}
	back := send(t, c, http.MethodGet, callback, navigation)
	if back.StatusCode != http.StatusFound || back.Header.Get("Location") != "/app?tab=2" {
		t.Fatalf("callback: status %d to %q, want 302 to /app?tab=2", back.StatusCode, back.Header.Get("Location"))
	}
	if rg.up.count() != public {
		t.Errorf("the upstream saw the login's requests")
	}
	var session *http.Cookie
	for _, ck := range back.Cookies() {
		if ck.Name == "_jwt_sidecar" && ck.Value != "" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v, want an HttpOnly SameSite=Lax _jwt_sidecar", session)
	}

	// The session reaches the upstream as the claim headers, which the
	// client cannot forge; the session cookie stays with the sidecar,
	// other cookies pass.
	resp := send(t, c, http.MethodGet, rg.base+"/app?tab=2", func(r *http.Request) {
		navigation(r)
		r.Header.Set("X-Sub", "mallory")
		r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
	})
	seen := rg.up.last()
	if resp.StatusCode != http.StatusOK || seen == nil || seen.URL.Path != "/app" {
		t.Fatalf("with the session: status %d, want 200 from the upstream", resp.StatusCode)
	}
	if got := [3]string{seen.Header.Get("X-Sub"), seen.Header.Get("X-Email"), seen.Header.Get("X-Groups")}; got != [3]string{"alice", "alice@example.com", "staff,dev"} {
		t.Errorf("upstream claim headers = %q, want alice, her email and groups", got)
	}
	if ck := seen.Header.Get("Cookie"); strings.Contains(ck, "_jwt_sidecar") || !strings.Contains(ck, "theme=dark") {
		t.Errorf("upstream Cookie = %q, want theme=dark without the session", ck)
	}
	// An XHR of the same browser carries the cookie and passes too.
	if resp := send(t, c, http.MethodGet, rg.base+"/api/items", func(r *http.Request) { r.Header.Set("X-Requested-With", "XMLHttpRequest") }); resp.StatusCode != http.StatusOK {
		t.Errorf("xhr with the session: status %d, want 200", resp.StatusCode)
	}

	// A bearer client on the same route keeps working, and a bearer token
	// wins over a session: a bad one is refused even with a session.
	tok := clientToken(t, rg.issuer)
	if resp := send(t, c, http.MethodGet, rg.base+"/app", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }); resp.StatusCode != http.StatusOK || rg.up.last().Header.Get("X-Sub") != "api-client" {
		t.Errorf("bearer beside the session: status %d, X-Sub %q; want 200 for api-client", resp.StatusCode, rg.up.last().Header.Get("X-Sub"))
	}
	n := rg.up.count()
	if resp := send(t, c, http.MethodGet, rg.base+"/app", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok+"x") }); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad bearer with a session: status %d, want 401", resp.StatusCode)
	}

	// Refusals of the login itself: a forged state, a replayed callback, a
	// tampered session cookie. None reaches the upstream.
	other := browser(t)
	if resp := send(t, other, http.MethodGet, rg.base+"/oauth2/callback?code=x&state=AAAAAAAAAAAAAAAAAAAAAAAAAA", navigation); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged state: status %d, want 400", resp.StatusCode)
	}
	if resp := send(t, c, http.MethodGet, callback, navigation); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed callback: status %d, want 400", resp.StatusCode)
	}
	tampered := browser(t)
	u, _ := url.Parse(rg.base)
	v := []byte(session.Value)
	v[len(v)/2] ^= 1
	tampered.Jar.SetCookies(u, []*http.Cookie{{Name: "_jwt_sidecar", Value: string(v)}})
	if resp := send(t, tampered, http.MethodGet, rg.base+"/app", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tampered session, API call: status %d, want 401", resp.StatusCode)
	}
	tampered.Jar.SetCookies(u, []*http.Cookie{{Name: "_jwt_sidecar", Value: string(v)}})
	if resp := send(t, tampered, http.MethodGet, rg.base+"/app", navigation); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), rg.issuer+"/authorize?") {
		t.Errorf("tampered session, navigation: status %d to %q, want 302 to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
	if rg.up.count() != n {
		t.Errorf("the upstream saw %d refused requests", rg.up.count()-n)
	}

	// Sign-out clears the session and goes through the issuer's
	// end_session_endpoint; the old browser is then back to 401.
	out := send(t, c, http.MethodGet, rg.base+"/oauth2/sign_out", navigation)
	if out.StatusCode != http.StatusFound || !strings.HasPrefix(out.Header.Get("Location"), rg.issuer+"/end_session?") {
		t.Errorf("sign-out: status %d to %q, want 302 to the issuer's end_session", out.StatusCode, out.Header.Get("Location"))
	}
	if resp := send(t, c, http.MethodGet, rg.base+"/app", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after sign-out: status %d, want 401", resp.StatusCode)
	}
	if rg.up.count() != n {
		t.Errorf("the upstream saw %d requests after sign-out", rg.up.count()-n)
	}

	// The metrics: logins started and completed, failures by reason, and
	// the redirects counted as requests refused for a missing token.
	body := scrape(t, rg.s)
	for _, want := range []string{
		`jwt_sidecar_logins_total{event="started"} 2`,
		`jwt_sidecar_logins_total{event="completed"} 1`,
		`jwt_sidecar_login_failures_total{reason="wrong_state"} 2`,
		`jwt_sidecar_login_failures_total{reason="bad_nonce"} 0`,
		`jwt_sidecar_session_refreshes_total{outcome="refreshed"} 0`,
		`jwt_sidecar_requests_total{outcome="unauthenticated",reason="missing"} 9`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// clientToken gets an access token for api-client from the issuer.
func clientToken(t *testing.T, issuer string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("api-client", "api-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("client_credentials: status %d, %v", resp.StatusCode, err)
	}
	return tr.AccessToken
}

// scrape reads the sidecar's /metrics.
func scrape(t *testing.T, s *sidecar) string {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoginProcessRules: from CONFIG_FILE, a session meets the rules'
// claim requirements exactly as a token would: a rule the user's groups
// satisfy passes, one they do not is 403 insufficient_scope, unseen by the
// upstream.
func TestLoginProcessRules(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs jwt-issuer")
	}
	rg := newLoginRig(t, true)
	c := browser(t)
	callback := rg.signIn(t, send(t, c, http.MethodGet, rg.base+"/staff/home", navigation))
	if back := send(t, c, http.MethodGet, callback, navigation); back.StatusCode != http.StatusFound || back.Header.Get("Location") != "/staff/home" {
		t.Fatalf("callback: status %d to %q, want 302 to /staff/home", back.StatusCode, back.Header.Get("Location"))
	}
	if resp := send(t, c, http.MethodGet, rg.base+"/staff/home", navigation); resp.StatusCode != http.StatusOK || rg.up.last().Header.Get("X-Groups") != "staff,dev" {
		t.Errorf("staff page with alice's session: status %d, want 200 with her groups", resp.StatusCode)
	}
	n := rg.up.count()
	resp := send(t, c, http.MethodGet, rg.base+"/admin/users", navigation)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("admin page with a staff session: status %d, challenge %q; want 403 insufficient_scope", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if rg.up.count() != n {
		t.Error("the upstream saw the refused admin request")
	}
	if resp := send(t, c, http.MethodGet, rg.base+"/public/x", navigation); resp.StatusCode != http.StatusOK {
		t.Errorf("public path: status %d, want 200", resp.StatusCode)
	}
	if ck := rg.up.last().Header.Get("Cookie"); strings.Contains(ck, "_jwt_sidecar") {
		t.Errorf("a public path forwarded the session cookie: %q", ck)
	}
}
