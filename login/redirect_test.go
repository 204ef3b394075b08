package login

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestSafeReturn(t *testing.T) {
	l := &Login{opts: Options{AllowedRedirectHosts: []string{"docs.example.com", ".apps.example.com"}}}
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/x", nil)
	tests := []struct {
		raw  string
		want bool
	}{
		{"/", true},
		{"/app?x=1#top", true},
		{"/a%2Fb", true},
		{"https://app.example.com/back", true},
		{"https://APP.example.com/back", true},
		{"https://docs.example.com/", true},
		{"https://x.apps.example.com/", true},
		{"https://apps.example.com.evil/", false},
		{"https://evilapps.example.com/", false},
		{"//evil.com", false},
		{"///evil.com", false},
		{"/\\evil.com", false},
		{"\\\\evil.com", false},
		{"/\t/evil.com", false},
		{"/\n/evil.com", false},
		{"/%2F%2Fevil.com", false},
		{"/%2f/evil.com", false},
		{"/%5Cevil.com", false},
		{"/%252F%252Fevil.com", false},
		{"%2F%2Fevil.com", false},
		{"https://evil.com", false},
		{"https://evil.com/app.example.com", false},
		{"https://app.example.com@evil.com/", false},
		{"https://app.example.com%40evil.com/", false},
		{"http://app.example.com/", false}, // https only, unless plain HTTP
		{"javascript:alert(1)", false},
		{"data:text/html,x", false},
		{"evil.com", false},
		{"", false},
		{"/" + strings.Repeat("a", 3000), false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, ok := l.safeReturn(r, tt.raw)
			if ok != tt.want {
				t.Errorf("safeReturn(%q) = %q, %v; want ok %v", tt.raw, got, ok, tt.want)
			}
		})
	}
}

// TestOpenRedirects drives the whole login and sign-out with hostile return
// URLs: the browser always ends on this host.
func TestOpenRedirects(t *testing.T) {
	hostile := []string{"//evil.com/", "/\\evil.com", "https://evil.com/", "/%2F%2Fevil.com", "/%5Cevil.com", "https:%2F%2Fevil.com"}
	r := newRig(t, func(o *Options) { o.KeepIDToken = false })
	r.idp.noEndSess = true
	for _, rd := range hostile {
		t.Run("sign-out rd="+rd, func(t *testing.T) {
			resp := r.navigate(t, r.srv.URL+DefaultSignOutPath+"?rd="+url.QueryEscape(rd))
			if got := resp.Header.Get("Location"); got != "/" {
				t.Errorf("Location = %q, want /", got)
			}
		})
	}
	// A request whose own path reads as another host: after login the
	// browser must not be sent there. (Built in memory: a client would
	// send "//evil.com/x" to evil.com.)
	for _, path := range []string{"//evil.com/x", "/\\evil.com", "///evil.com"} {
		t.Run("login from "+path, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
			req.URL.Path = path
			rec := httptest.NewRecorder()
			r.login.Start(rec, req)
			cookies := rec.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies = %v, want the flow cookie", cookies)
			}
			plain, _, err := r.login.seal.open(cookies[0].Value, aadFlow+cookies[0].Name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(plain), `"r":"/"`) {
				t.Errorf("flow = %s, want the return URL /", plain)
			}
		})
	}
	if r.up.count() != 0 {
		t.Errorf("the upstream saw %d requests", r.up.count())
	}
}

func TestSignOut(t *testing.T) {
	r := newRig(t, nil)
	r.signIn(t, "/app")
	resp := r.navigate(t, r.srv.URL+DefaultSignOutPath+"?rd=%2Fbye")
	if del := sessionCookie(resp, DefaultCookieName); del == nil || del.MaxAge >= 0 {
		t.Errorf("sign-out did not delete the session cookie: %+v", del)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || u.Scheme+"://"+u.Host+u.Path != r.idp.issuer+"/logout" {
		t.Fatalf("Location = %q, want the end_session_endpoint", resp.Header.Get("Location"))
	}
	q := u.Query()
	if q.Get("post_logout_redirect_uri") != r.srv.URL+"/bye" || q.Get("client_id") != testClientID || q.Get("id_token_hint") == "" {
		t.Errorf("logout request = %v, want post_logout_redirect_uri, client_id and id_token_hint", q)
	}
	assertNoSession(t, r)

	t.Run("without end_session_endpoint", func(t *testing.T) {
		r := newRig(t, nil)
		r.idp.noEndSess = true
		r.signIn(t, "/app")
		resp := r.navigate(t, r.srv.URL+DefaultSignOutPath)
		if got := resp.Header.Get("Location"); got != "/" {
			t.Errorf("Location = %q, want /", got)
		}
		assertNoSession(t, r)
	})
}

// TestSessionSize measures the session cookie of a realistic enterprise
// login: a Keycloak-shaped ID token with groups and roles, the claims a
// typical header and rule set keeps, a 900-byte refresh token (Keycloak's
// are JWTs of that size), and the ID token itself for id_token_hint.
func TestSessionSize(t *testing.T) {
	r := newRig(t, func(o *Options) {
		o.KeepIDToken = false
		o.KeepClaims = []string{"email", "name", "preferred_username", "groups", "realm_access.roles", "resource_access.web-app.roles", "scope"}
	})
	groups := []string{}
	for _, g := range []string{"engineering", "platform", "sre-oncall", "payments-readers", "payments-writers", "customer-support", "vpn-users", "github-admins", "finance-reports", "all-staff", "eu-employees", "security-champions"} {
		groups = append(groups, "/acme/"+g)
	}
	r.idp.claims = map[string]any{
		"email": "alexandra.montgomery-smith@example-enterprise.com", "email_verified": true,
		"name": "Alexandra Montgomery-Smith", "given_name": "Alexandra", "family_name": "Montgomery-Smith",
		"preferred_username": "alexandra.montgomery-smith", "locale": "en-GB",
		"groups":          groups,
		"realm_access":    map[string]any{"roles": []string{"offline_access", "uma_authorization", "default-roles-acme", "employee", "approver", "reporting"}},
		"resource_access": map[string]any{"web-app": map[string]any{"roles": []string{"admin", "editor", "viewer"}}, "account": map[string]any{"roles": []string{"manage-account", "view-profile"}}},
		"scope":           "openid profile email", "sid": "f6e0c8a2-3b4c-4d5e-8f9a-0b1c2d3e4f5a", "session_state": "f6e0c8a2-3b4c-4d5e-8f9a-0b1c2d3e4f5a",
		"acr": "1", "at_hash": "x4dFf0ZGzXoPbVdP6OA1Sw", "typ": "ID", "auth_time": 1767225600,
	}
	r.idp.edit = func(c jwt.MapClaims) { c["sub"] = "8a7c3b9e-5d2f-4e1a-9b6c-7d8e9f0a1b2c" }
	done := r.signIn(t, "/app")
	c := sessionCookie(done, DefaultCookieName)
	if c == nil {
		t.Fatalf("no session: %d", done.StatusCode)
	}
	// The refresh token of this provider is short; weigh a Keycloak one.
	got, _, err := r.login.seal.open(c.Value, aadSession+DefaultCookieName)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := decodeSession(got)
	if err != nil {
		t.Fatal(err)
	}
	s.Refresh = strings.Repeat("r", 900)
	idToken := r.idp.idToken("8a7c3b9e-5d2f-4e1a-9b6c-7d8e9f0a1b2c", "AAAAAAAAAAAAAAAAAAAAAAAAAA")
	value, err := r.login.sealSession(s)
	if err != nil {
		t.Fatalf("a realistic session does not fit one cookie: %v", err)
	}
	size := len(DefaultCookieName) + 1 + len(value)
	s.Refresh = ""
	bare, _ := r.login.sealSession(s)
	t.Logf("session cookie: %d bytes with a 900-byte refresh token, %d without (kept claims %d bytes); keeping the %d-byte ID token as well would add about %d (it fits only without the refresh token, or with fewer claims)",
		size, len(DefaultCookieName)+1+len(bare), len(s.Claims), len(idToken), len(idToken)*4/3)
	if size > MaxCookieBytes {
		t.Errorf("a realistic session takes %d bytes, more than %d", size, MaxCookieBytes)
	}
}

// TestSessionTooLarge: a session that would not fit one cookie fails the
// login loudly, and no cookie is split.
func TestSessionTooLarge(t *testing.T) {
	r := newRig(t, func(o *Options) { o.KeepClaims = []string{"blob"} })
	r.idp.claims = map[string]any{"blob": strings.Repeat("x", 4000)}
	done := r.signIn(t, "/app")
	if done.StatusCode != http.StatusInternalServerError || sessionCookie(done, DefaultCookieName) != nil {
		t.Errorf("status = %d, cookie %v; want 500 and no session", done.StatusCode, sessionCookie(done, DefaultCookieName))
	}
	if r.rec.failures(SessionTooLarge) != 1 {
		t.Errorf("failures = %v, want session_too_large", r.rec.failed)
	}
	assertNoSession(t, r)
}
