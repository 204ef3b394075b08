package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testRedirect = "http://127.0.0.1:9/oauth2/callback"

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// pkce returns a verifier and its S256 challenge.
func pkce(t testing.TB) (string, string) {
	t.Helper()
	v := strings.Repeat("v", 20) + "0123456789abcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte(v))
	return v, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authParams is a good authorization request of client demo.
func authParams(challenge string) url.Values {
	return url.Values{
		"client_id": {"demo"}, "redirect_uri": {testRedirect}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

// signIn posts the login form and returns the redirect back.
func signIn(t testing.TB, base string, params url.Values, user, password string) *http.Response {
	t.Helper()
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("username", user)
	form.Set("password", password)
	resp, err := noFollow.PostForm(base+"/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// codeOf reads the code of a successful redirect back.
func codeOf(t testing.TB, resp *http.Response) string {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status = %d, want 303", resp.StatusCode)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	if u.Query().Get("code") == "" {
		t.Fatalf("no code in %s", u)
	}
	return u.Query().Get("code")
}

// exchange posts a grant as client demo.
func exchange(t testing.TB, base string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, body := postForm(t, base+"/token", basic("demo", "demo-secret"), form)
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return resp.StatusCode, got
}

func TestAuthorizationCodeFlow(t *testing.T) {
	dir := t.TempDir()
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, []byte(`[{"username":"bob","password":"pw","claims":{"groups":["admins"],"email":"bob@corp.example"}}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, base := testServer(t, func(c *config) { c.UsersFile = usersFile })
	verifier, challenge := pkce(t)
	params := authParams(challenge)

	resp, page := get(t, noFollow, base+"/authorize?"+params.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `name="password"`) || !strings.Contains(string(page), challenge) {
		t.Fatalf("form = %d:\n%s", resp.StatusCode, page)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Error("the login form may be framed")
	}
	if bad := signIn(t, base, params, "bob", "wrong"); bad.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password = %d, want 401", bad.StatusCode)
	}
	back := signIn(t, base, params, "bob", "pw")
	loc, _ := url.Parse(back.Header.Get("Location"))
	if loc.Query().Get("state") != "st-1" || loc.Query().Get("iss") != "http://127.0.0.1:8080" {
		t.Errorf("redirect back = %s, want state and iss", loc)
	}
	code := codeOf(t, back)

	status, tok := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}})
	if status != http.StatusOK {
		t.Fatalf("exchange = %d %v", status, tok)
	}
	_, jwks := get(t, http.DefaultClient, base+"/.well-known/jwks.json")
	keyfunc := keyfuncFromJWKS(t, jwks)
	id := jwt.MapClaims{}
	if _, err := jwt.NewParser(jwt.WithAudience("demo"), jwt.WithExpirationRequired()).ParseWithClaims(tok["id_token"].(string), id, keyfunc); err != nil {
		t.Fatalf("id_token: %v", err)
	}
	if id["sub"] != "bob" || id["nonce"] != "n-1" || id["email"] != "bob@corp.example" || id["name"] != "bob" || id["auth_time"] == nil {
		t.Errorf("id_token claims = %v", id)
	}
	if g, _ := id["groups"].([]any); len(g) != 1 || g[0] != "admins" {
		t.Errorf("id_token groups = %v, want the USERS_FILE claims", id["groups"])
	}
	access := jwt.MapClaims{}
	if _, err := jwt.NewParser(jwt.WithAudience("demo-api")).ParseWithClaims(tok["access_token"].(string), access, keyfunc); err != nil {
		t.Fatalf("access_token: %v", err)
	}
	if access["sub"] != "bob" || access["client_id"] != "demo" || access["scope"] != "openid profile email" {
		t.Errorf("access_token claims = %v", access)
	}
	rt1, _ := tok["refresh_token"].(string)

	// Refresh rotates: the new token works once, the old one never again.
	status, next := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}})
	if status != http.StatusOK || next["id_token"] == nil || next["refresh_token"] == rt1 {
		t.Fatalf("refresh = %d %v", status, next)
	}
	if status, e := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}); status != 400 || e["error"] != "invalid_grant" {
		t.Errorf("reused refresh token = %d %v, want invalid_grant", status, e)
	}
	rt2 := next["refresh_token"].(string)

	// A second use of the code fails and revokes what the first issued.
	if status, e := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}}); status != 400 || e["error"] != "invalid_grant" {
		t.Errorf("replayed code = %d %v, want invalid_grant", status, e)
	}
	if status, _ := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}); status != 400 {
		t.Errorf("refresh token of a replayed code = %d, want 400", status)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	_, base := testServer(t, func(c *config) { c.Clients = []string{"demo:demo-secret", "other:other-secret"} })
	_, challenge := pkce(t)
	tests := []struct {
		name      string
		edit      func(url.Values)
		wantPage  bool   // an error page, no redirect
		wantError string // the error sent back to the client
	}{
		{name: "unknown client", edit: func(p url.Values) { p.Set("client_id", "nobody") }, wantPage: true},
		{name: "redirect to another host", edit: func(p url.Values) { p.Set("redirect_uri", "https://evil.example/cb") }, wantPage: true},
		{name: "redirect with fragment", edit: func(p url.Values) { p.Set("redirect_uri", testRedirect+"#x") }, wantPage: true},
		{name: "redirect with userinfo", edit: func(p url.Values) { p.Set("redirect_uri", "http://a@127.0.0.1/cb") }, wantPage: true},
		{name: "repeated parameter", edit: func(p url.Values) { p.Add("state", "x") }, wantPage: true},
		{name: "token response type", edit: func(p url.Values) { p.Set("response_type", "token") }, wantError: "unsupported_response_type"},
		{name: "no openid scope", edit: func(p url.Values) { p.Set("scope", "profile") }, wantError: "invalid_scope"},
		{name: "no PKCE", edit: func(p url.Values) { p.Del("code_challenge"); p.Del("code_challenge_method") }, wantError: "invalid_request"},
		{name: "plain PKCE", edit: func(p url.Values) { p.Set("code_challenge_method", "plain") }, wantError: "invalid_request"},
		{name: "short challenge", edit: func(p url.Values) { p.Set("code_challenge", "abc") }, wantError: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := authParams(challenge)
			tt.edit(p)
			resp, _ := get(t, noFollow, base+"/authorize?"+p.Encode())
			if tt.wantPage {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Errorf("status = %d, Location %q; want 400 without a redirect", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != tt.wantError || loc.Query().Get("state") != "st-1" {
				t.Errorf("status = %d to %s, want 303 with error %s and the state", resp.StatusCode, loc, tt.wantError)
			}
		})
	}
}

func TestCodeExchangeRefusals(t *testing.T) {
	s, base := testServer(t, func(c *config) { c.Clients = []string{"demo:demo-secret", "other:other-secret"} })
	clock := newTestClock(s, time.Now())
	verifier, challenge := pkce(t)
	good := func(code string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}}
	}
	tests := []struct {
		name string
		post func(t *testing.T, code string) []byte
	}{
		{name: "wrong verifier", post: func(t *testing.T, code string) []byte {
			f := good(code)
			f.Set("code_verifier", strings.Repeat("x", 43))
			_, b := postForm(t, base+"/token", basic("demo", "demo-secret"), f)
			return b
		}},
		{name: "no verifier", post: func(t *testing.T, code string) []byte {
			f := good(code)
			f.Del("code_verifier")
			_, b := postForm(t, base+"/token", basic("demo", "demo-secret"), f)
			return b
		}},
		{name: "other redirect_uri", post: func(t *testing.T, code string) []byte {
			f := good(code)
			f.Set("redirect_uri", "http://127.0.0.1:9/other")
			_, b := postForm(t, base+"/token", basic("demo", "demo-secret"), f)
			return b
		}},
		{name: "other client", post: func(t *testing.T, code string) []byte {
			_, b := postForm(t, base+"/token", basic("other", "other-secret"), good(code))
			return b
		}},
		{name: "expired code", post: func(t *testing.T, code string) []byte {
			clock.Set(clock.Now().Add(codeTTL + time.Second))
			_, b := postForm(t, base+"/token", basic("demo", "demo-secret"), good(code))
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := codeOf(t, signIn(t, base, authParams(challenge), "alice", "alice"))
			if body := tt.post(t, code); !strings.Contains(string(body), `"invalid_grant"`) {
				t.Errorf("answer = %s, want invalid_grant", body)
			}
			// A code tried once, even wrongly, is spent.
			if status, _ := exchange(t, base, good(code)); status != http.StatusBadRequest {
				t.Errorf("the code still works after a failed exchange: %d", status)
			}
		})
	}
}

func TestEndSession(t *testing.T) {
	_, base := testServer(t, nil)
	verifier, challenge := pkce(t)
	code := codeOf(t, signIn(t, base, authParams(challenge), "alice", "alice"))
	_, tok := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}})
	idToken := tok["id_token"].(string)

	for _, tt := range []struct {
		name   string
		params url.Values
	}{
		{"forged hint", url.Values{"id_token_hint": {idToken[:len(idToken)-4] + "AAAA"}}},
		{"unregistered return", url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://evil.example/"}}},
		{"return without client", url.Values{"post_logout_redirect_uri": {"http://127.0.0.1:9/"}}},
		{"hint of another client", url.Values{"id_token_hint": {idToken}, "client_id": {"other"}, "post_logout_redirect_uri": {"http://127.0.0.1:9/"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := get(t, noFollow, base+"/end_session?"+tt.params.Encode())
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("status = %d, Location %q; want 400 without a redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}

	resp, _ := get(t, noFollow, base+"/end_session?"+url.Values{
		"id_token_hint": {idToken}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"s"},
	}.Encode())
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://127.0.0.1:9/bye?state=s" {
		t.Fatalf("end_session = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if status, _ := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}); status != http.StatusBadRequest {
		t.Errorf("refresh after sign-out = %d, want 400", status)
	}
	if resp, page := get(t, noFollow, base+"/end_session"); resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "signed out") {
		t.Errorf("end_session without parameters = %d %s", resp.StatusCode, page)
	}
}

func TestLoginDiscovery(t *testing.T) {
	_, base := testServer(t, nil)
	_, body := get(t, http.DefaultClient, base+"/.well-known/openid-configuration")
	var d map[string]any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d["authorization_endpoint"] != "http://127.0.0.1:8080/authorize" || d["end_session_endpoint"] != "http://127.0.0.1:8080/end_session" {
		t.Errorf("endpoints = %v, %v", d["authorization_endpoint"], d["end_session_endpoint"])
	}
	if m, _ := d["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
		t.Errorf("code_challenge_methods_supported = %v", d["code_challenge_methods_supported"])
	}
}

func TestLoginConfig(t *testing.T) {
	for _, env := range [][]string{
		{"USERS=alice"},
		{"USERS=alice:a,alice:b"},
		{"USERS_FILE=/nonexistent.json"},
		{"REDIRECT_URIS=not-a-url"},
		{"REFRESH_TOKEN_TTL=0s"},
	} {
		if _, err := parseConfig(env); err == nil {
			t.Errorf("%v accepted", env)
		}
	}
}
