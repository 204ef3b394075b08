package login

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// sessionCookie returns the Set-Cookie of the session in resp, or nil.
func sessionCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLoginFlow(t *testing.T) {
	r := newRig(t, nil)
	resp := r.navigate(t, r.srv.URL+"/app?x=1")
	auth, _ := url.Parse(resp.Header.Get("Location"))
	q := auth.Query()
	for name, want := range map[string]string{
		"response_type": "code", "client_id": testClientID, "scope": "openid profile email",
		"code_challenge_method": "S256", "redirect_uri": r.srv.URL + DefaultCallbackPath,
	} {
		if got := q.Get(name); got != want {
			t.Errorf("authorization request %s = %q, want %q", name, got, want)
		}
	}
	if len(q.Get("code_challenge")) != 43 || q.Get("state") == "" || q.Get("nonce") == "" || q.Get("state") == q.Get("nonce") {
		t.Errorf("challenge, state or nonce missing or reused: %v", q)
	}
	cb := r.authorize(t, resp)
	done := r.navigate(t, cb)
	if done.StatusCode != http.StatusFound || done.Header.Get("Location") != "/app?x=1" {
		t.Fatalf("callback = %d to %q, want 302 to /app?x=1", done.StatusCode, done.Header.Get("Location"))
	}
	c := sessionCookie(done, DefaultCookieName)
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("session cookie = %+v, want HttpOnly, Secure, SameSite=Lax, Path=/", c)
	}
	if r.up.count() != 0 {
		t.Fatal("the upstream saw a request during the login")
	}

	if got := r.navigate(t, r.srv.URL+"/app").StatusCode; got != http.StatusOK {
		t.Fatalf("with a session: status = %d, want 200", got)
	}
	seen := r.up.last()
	if seen.Header.Get("X-Sub") != "alice" || seen.Header.Get("X-Email") != "alice@example.com" {
		t.Errorf("upstream headers = %v, want the claims", seen.Header)
	}
	if strings.Contains(seen.Header.Get("Cookie"), DefaultCookieName) {
		t.Errorf("the upstream saw the session cookie: %q", seen.Header.Get("Cookie"))
	}
	// An API call of the same browser (fetch, XHR) uses the session too.
	req, _ := http.NewRequest(http.MethodGet, r.srv.URL+"/api", nil)
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	if resp, err := r.client.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("XHR with a session: %v %v", resp, err)
	}
	if r.rec.started != 1 || r.rec.completed != 1 {
		t.Errorf("recorded started %d, completed %d, want 1 and 1", r.rec.started, r.rec.completed)
	}
}

// TestNotBrowserGets401 proves that a request that is not a navigation never
// gets a redirect and never reaches the upstream.
func TestNotBrowserGets401(t *testing.T) {
	r := newRig(t, nil)
	tests := []struct {
		name   string
		method string
		header map[string]string
	}{
		{name: "api client", method: "GET", header: map[string]string{"Accept": "application/json"}},
		{name: "curl", method: "GET", header: map[string]string{"Accept": "*/*"}},
		{name: "xhr", method: "GET", header: map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}},
		{name: "fetch", method: "GET", header: map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "cors"}},
		{name: "html q=0", method: "GET", header: map[string]string{"Accept": "text/html;q=0, */*"}},
		{name: "post", method: "POST", header: map[string]string{"Accept": "text/html"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, r.srv.URL+"/app", nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := r.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
				t.Errorf("status = %d, Location %q, want 401 without a redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	if r.up.count() != 0 || r.rec.started != 0 {
		t.Errorf("upstream saw %d requests, %d logins started; want none", r.up.count(), r.rec.started)
	}
}

// TestCallbackRefusals covers every way a callback is refused. Each one
// leaves the browser without a session: the next navigation is sent to
// login again and the upstream never sees a request.
func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name       string
		idp        func(*testIdP)
		callback   func(t *testing.T, r *rig, cb string) string // edits the callback URL
		wantStatus int
		wantReason Reason
	}{
		{
			name: "wrong state",
			callback: func(_ *testing.T, _ *rig, cb string) string {
				return replaceParam(cb, "state", "AAAAAAAAAAAAAAAAAAAAAAAAAA")
			},
			wantStatus: http.StatusBadRequest, wantReason: WrongState,
		},
		{
			// A code moved into another login of the same browser: the
			// state opens that login's flow, but PKCE binds the code to
			// the first login's verifier, so the provider refuses it.
			name: "code of another login",
			callback: func(t *testing.T, r *rig, cb string) string {
				return replaceParam(cb, "state", stateOf(t, r.navigate(t, r.srv.URL+"/other")))
			},
			wantStatus: http.StatusBadRequest, wantReason: ReplayedCode,
		},
		{
			name:       "no state",
			callback:   func(_ *testing.T, _ *rig, cb string) string { return replaceParam(cb, "state", "") },
			wantStatus: http.StatusBadRequest, wantReason: WrongState,
		},
		{
			name: "provider error",
			callback: func(_ *testing.T, _ *rig, cb string) string {
				return replaceParam(replaceParam(cb, "code", ""), "error", "access_denied")
			},
			wantStatus: http.StatusForbidden, wantReason: IdPError,
		},
		{
			name:       "no code",
			callback:   func(_ *testing.T, _ *rig, cb string) string { return replaceParam(cb, "code", "") },
			wantStatus: http.StatusBadRequest, wantReason: BadCallback,
		},
		{
			name:       "unknown code",
			callback:   func(_ *testing.T, _ *rig, cb string) string { return replaceParam(cb, "code", "forged") },
			wantStatus: http.StatusBadRequest, wantReason: ReplayedCode,
		},
		{
			name:       "wrong nonce",
			idp:        func(p *testIdP) { p.edit = func(c jwt.MapClaims) { c["nonce"] = "AAAAAAAAAAAAAAAAAAAAAAAAAA" } },
			wantStatus: http.StatusUnauthorized, wantReason: BadNonce,
		},
		{
			name:       "no nonce",
			idp:        func(p *testIdP) { p.edit = func(c jwt.MapClaims) { delete(c, "nonce") } },
			wantStatus: http.StatusUnauthorized, wantReason: BadNonce,
		},
		{
			name:       "another issuer",
			idp:        func(p *testIdP) { p.edit = func(c jwt.MapClaims) { c["iss"] = otherIssuer } },
			wantStatus: http.StatusUnauthorized, wantReason: BadIDToken,
		},
		{
			name:       "another audience",
			idp:        func(p *testIdP) { p.edit = func(c jwt.MapClaims) { c["aud"] = "another-app" } },
			wantStatus: http.StatusUnauthorized, wantReason: BadIDToken,
		},
		{
			name:       "several audiences without azp",
			idp:        func(p *testIdP) { p.edit = func(c jwt.MapClaims) { c["aud"] = []string{testClientID, "another-app"} } },
			wantStatus: http.StatusUnauthorized, wantReason: BadIDToken,
		},
		{
			name:       "azp of another client",
			idp:        func(p *testIdP) { p.edit = func(c jwt.MapClaims) { c["azp"] = "another-app" } },
			wantStatus: http.StatusUnauthorized, wantReason: BadIDToken,
		},
		{
			name:       "expired ID token",
			idp:        func(p *testIdP) { p.idTokenTTL = -time.Hour },
			wantStatus: http.StatusUnauthorized, wantReason: BadIDToken,
		},
		{
			name:       "ID token signed by another key",
			idp:        func(p *testIdP) { p.signWith = newTestIdP(p.t).key },
			wantStatus: http.StatusUnauthorized, wantReason: BadIDToken,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			if tt.idp != nil {
				tt.idp(r.idp)
			}
			cb := r.authorize(t, r.navigate(t, r.srv.URL+"/app"))
			if tt.callback != nil {
				cb = tt.callback(t, r, cb)
			}
			resp := r.navigate(t, cb)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := r.rec.failures(tt.wantReason); got != 1 {
				t.Errorf("failures[%s] = %d, want 1 (all: %v)", tt.wantReason, got, r.rec.failed)
			}
			assertNoSession(t, r)
		})
	}
}

// replaceParam sets (or, with an empty value, removes) a query parameter.
func replaceParam(raw, name, value string) string {
	u, _ := url.Parse(raw)
	q := u.Query()
	if value == "" {
		q.Del(name)
	} else {
		q.Set(name, value)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// stateOf is the state of a redirect to the provider.
func stateOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || u.Query().Get("state") == "" {
		t.Fatalf("no state in %q", resp.Header.Get("Location"))
	}
	return u.Query().Get("state")
}

// assertNoSession proves the browser has no session: a navigation is sent
// to login, an API call gets 401, and the upstream saw nothing at all.
func assertNoSession(t *testing.T, r *rig) {
	t.Helper()
	resp := r.navigate(t, r.srv.URL+"/app")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), r.idp.issuer+"/authorize?") {
		t.Errorf("navigation without a session = %d to %q, want 302 to the provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodGet, r.srv.URL+"/api", nil)
	req.Header.Set("Accept", "application/json")
	api, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	api.Body.Close()
	if api.StatusCode != http.StatusUnauthorized {
		t.Errorf("API call without a session = %d, want 401", api.StatusCode)
	}
	if n := r.up.count(); n != 0 {
		t.Errorf("the upstream saw %d requests, want none", n)
	}
}

// TestReplayedCallback: a callback used once does not work twice, neither in
// the same browser (its flow cookie is gone) nor in another one that copied
// the flow cookie (the provider refuses the used code).
func TestReplayedCallback(t *testing.T) {
	r := newRig(t, nil)
	start := r.navigate(t, r.srv.URL+"/app")
	srvURL, _ := url.Parse(r.srv.URL + DefaultCallbackPath)
	stolen := r.client.Jar.Cookies(srvURL) // the flow cookie, copied by an attacker
	cb := r.authorize(t, start)
	if resp := r.navigate(t, cb); resp.StatusCode != http.StatusFound {
		t.Fatalf("first callback = %d, want 302", resp.StatusCode)
	}
	if resp := r.navigate(t, cb); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("same browser again = %d, want 400", resp.StatusCode)
	}
	if got := r.rec.failures(WrongState); got != 1 {
		t.Errorf("failures[wrong_state] = %d, want 1", got)
	}
	attacker := &rig{idp: r.idp, up: r.up, login: r.login, srv: r.srv, client: browserClient(t, r.srv), rec: r.rec}
	attacker.client.Jar.SetCookies(srvURL, stolen)
	if resp := attacker.navigate(t, cb); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replay with the copied flow cookie = %d, want 400", resp.StatusCode)
	}
	if got := r.rec.failures(ReplayedCode); got != 1 {
		t.Errorf("failures[replayed_code] = %d, want 1", got)
	}
	assertNoSession(t, attacker)
}

// TestFlowExpires: a login left at the provider for longer than the flow
// lives cannot be finished.
func TestFlowExpires(t *testing.T) {
	clock := newClock()
	r := newRig(t, func(o *Options) { o.Now = clock.Now })
	cb := r.authorize(t, r.navigate(t, r.srv.URL+"/app"))
	clock.Advance(DefaultFlowTTL + time.Second)
	if resp := r.navigate(t, cb); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("late callback = %d, want 400", resp.StatusCode)
	}
	if got := r.rec.failures(WrongState); got != 1 {
		t.Errorf("failures[wrong_state] = %d, want 1", got)
	}
}

// clock is a settable clock the login and the test share.
type clock struct{ offset atomic.Int64 }

func newClock() *clock                   { return &clock{} }
func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// TestSessionCookieRefusals: a session cookie that does not open, or has
// ended, is no session: deleted, and the browser is sent to login.
func TestSessionCookieRefusals(t *testing.T) {
	tests := []struct {
		name string
		// keys are the cookie keys of the login that reads the cookie.
		keys   []string
		edit   func(value string) string
		later  time.Duration
		idp    func(*testIdP)
		before func(*Options)
	}{
		{name: "another key", keys: []string{keyB}},
		{name: "key removed after rotation", keys: []string{keyB, "key-C-0123456789abcdef0123456789abcdef"}},
		{name: "tampered", edit: func(v string) string { return flip(v, len(v)/2) }},
		{name: "tampered tag", edit: func(v string) string { return flip(v, len(v)-2) }},
		{name: "truncated", edit: func(v string) string { return v[:len(v)-10] }},
		{name: "not base64", edit: func(v string) string { return "!" + v[1:] }},
		{name: "flow cookie as session", edit: nil /* set below */},
		{name: "expired, no refresh token", later: 11 * time.Minute, idp: func(p *testIdP) { p.noRefresh = true }},
		{name: "expired, refresh off", later: 11 * time.Minute, before: func(o *Options) { o.Refresh = false }},
		{name: "past max age", later: 2 * time.Hour, before: func(o *Options) { o.MaxAge = time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			r := newRig(t, func(o *Options) {
				o.Now = clock.Now
				if tt.before != nil {
					tt.before(o)
				}
			})
			if tt.idp != nil {
				tt.idp(r.idp)
			}
			srvURL, _ := url.Parse(r.srv.URL + DefaultCallbackPath)
			start := r.navigate(t, r.srv.URL+"/app")
			flowCookies := r.client.Jar.Cookies(srvURL)
			done := r.navigate(t, r.authorize(t, start))
			c := sessionCookie(done, DefaultCookieName)
			if c == nil {
				t.Fatal("no session after login")
			}
			value := c.Value
			if tt.edit != nil {
				value = tt.edit(value)
			}
			if tt.name == "flow cookie as session" {
				value = flowCookies[0].Value
			}
			reader := r
			if tt.keys != nil {
				o := testOptions(t, r.idp, tt.keys...)
				o.Now = clock.Now
				l, err := New(o)
				if err != nil {
					t.Fatal(err)
				}
				reader = &rig{idp: r.idp, up: r.up, login: l, rec: r.rec}
				reader.srv = httptestTLS(t, gate(l, r.up))
				reader.client = browserClient(t, reader.srv)
			}
			clock.Advance(tt.later)
			u, _ := url.Parse(reader.srv.URL)
			reader.client.Jar.SetCookies(u, []*http.Cookie{{Name: DefaultCookieName, Value: value, Path: "/"}})
			resp := reader.navigate(t, reader.srv.URL+"/app")
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), r.idp.issuer) {
				t.Errorf("status = %d to %q, want 302 to the provider", resp.StatusCode, resp.Header.Get("Location"))
			}
			if del := sessionCookie(resp, DefaultCookieName); del == nil || del.MaxAge >= 0 {
				t.Errorf("the refused session cookie was not deleted: %+v", del)
			}
			assertNoSession(t, reader)
		})
	}
}

// flip changes the base64url character at i.
func flip(v string, i int) string {
	c := byte('A')
	if v[i] == 'A' {
		c = 'B'
	}
	return v[:i] + string(c) + v[i+1:]
}

// TestKeyRotation: a session sealed by the old key still works once a new
// key comes first, and is re-sealed with the new key on its next request;
// the old key can then be removed.
func TestKeyRotation(t *testing.T) {
	r := newRig(t, nil)
	old := sessionCookie(r.signIn(t, "/app"), DefaultCookieName)
	rotated := newRigWithKeys(t, r, keyB, keyA)
	u, _ := url.Parse(rotated.srv.URL)
	rotated.client.Jar.SetCookies(u, []*http.Cookie{{Name: DefaultCookieName, Value: old.Value, Path: "/"}})
	resp := rotated.navigate(t, rotated.srv.URL+"/app")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("old-key session after rotation = %d, want 200", resp.StatusCode)
	}
	resealed := sessionCookie(resp, DefaultCookieName)
	if resealed == nil || resealed.Value == old.Value {
		t.Fatal("the session was not re-sealed with the new key")
	}
	onlyNew := newRigWithKeys(t, r, keyB)
	for _, tc := range []struct {
		value string
		want  int
	}{{resealed.Value, http.StatusOK}, {old.Value, http.StatusFound}} {
		c := browserClient(t, onlyNew.srv)
		u, _ := url.Parse(onlyNew.srv.URL)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: DefaultCookieName, Value: tc.value, Path: "/"}})
		onlyNew.client = c
		if got := onlyNew.navigate(t, onlyNew.srv.URL+"/app").StatusCode; got != tc.want {
			t.Errorf("after the old key's removal: status = %d, want %d", got, tc.want)
		}
	}
}

func newRigWithKeys(t *testing.T, r *rig, keys ...string) *rig {
	t.Helper()
	l, err := New(testOptions(t, r.idp, keys...))
	if err != nil {
		t.Fatal(err)
	}
	n := &rig{idp: r.idp, up: r.up, login: l, rec: r.rec}
	n.srv = httptestTLS(t, gate(l, r.up))
	n.client = browserClient(t, n.srv)
	return n
}

// TestRefresh: a session near its end is renewed with the refresh token
// without a redirect; a page's parallel requests carrying the old cookie
// make one grant together, not one each (a rotating refresh token would
// fail the second).
func TestRefresh(t *testing.T) {
	for _, noID := range []bool{false, true} {
		t.Run(map[bool]string{false: "new id token", true: "no new id token"}[noID], func(t *testing.T) {
			clock := newClock()
			r := newRig(t, func(o *Options) { o.Now = clock.Now })
			r.idp.refreshNoID = noID
			old := sessionCookie(r.signIn(t, "/app"), DefaultCookieName)
			before := r.idp.tokenRequests()
			clock.Advance(9*time.Minute + 30*time.Second) // inside RefreshAhead of the 10 min ID token
			var wg sync.WaitGroup
			codes := make([]int, 6)
			renewedCookies := make([]*http.Cookie, len(codes))
			for i := range codes {
				wg.Go(func() {
					c := browserClient(t, r.srv)
					u, _ := url.Parse(r.srv.URL)
					c.Jar.SetCookies(u, []*http.Cookie{{Name: DefaultCookieName, Value: old.Value, Path: "/"}})
					req, _ := http.NewRequest(http.MethodGet, r.srv.URL+"/app", nil)
					req.Header.Set("Accept", "text/html")
					resp, err := c.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					codes[i] = resp.StatusCode
					if renewedCookies[i] = sessionCookie(resp, DefaultCookieName); renewedCookies[i] == nil {
						t.Errorf("request %d: no renewed cookie", i)
					}
				})
			}
			wg.Wait()
			for i, code := range codes {
				if code != http.StatusOK {
					t.Errorf("request %d: status %d, want 200", i, code)
				}
			}
			if got := r.idp.tokenRequests() - before; got != 1 {
				t.Errorf("refresh grants = %d, want 1", got)
			}
			if r.rec.refreshed != 1 {
				t.Errorf("recorded refreshes = %d, want 1", r.rec.refreshed)
			}
			// Past the old ID token's exp, the renewed session still works.
			clock.Advance(2 * time.Minute)
			c := browserClient(t, r.srv)
			u, _ := url.Parse(r.srv.URL)
			c.Jar.SetCookies(u, []*http.Cookie{renewedCookies[0]})
			r.client = c
			if got := r.navigate(t, r.srv.URL+"/app").StatusCode; got != http.StatusOK {
				t.Errorf("renewed session after the old exp = %d, want 200", got)
			}
			if r.idp.tokenRequests()-before != 1 {
				t.Error("the renewed session was refreshed again at once")
			}
		})
	}
}
