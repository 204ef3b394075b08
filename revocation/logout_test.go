package revocation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	opIssuer = "https://op.example"
	rpClient = "sidecar-client"
)

// logoutFixture is an OP key, a store and the logout endpoint served on
// 127.0.0.1, with a verify function that checks what the sidecar's verifier
// would: ES256 signature by the OP key, iss, aud, exp and iat.
type logoutFixture struct {
	key   *ecdsa.PrivateKey
	store *Store
	rec   *recorder
	clock *fakeClock
	url   string
}

func newLogoutFixture(t *testing.T) *logoutFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &logoutFixture{key: key, rec: &recorder{}, clock: &fakeClock{now: t0}}
	f.store, err = New(Options{Recorder: f.rec, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(opIssuer),
		jwt.WithAudience(rpClient), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(f.clock.Now))
	verify := func(_ context.Context, tok string) (map[string]any, error) {
		claims := jwt.MapClaims{}
		if _, err := parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil }); err != nil {
			return nil, err
		}
		return claims, nil
	}
	h, err := NewLogoutHandler(f.store, LogoutOptions{Verify: verify, MaxTokenLifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// logoutClaims are valid logout token claims for alice; edit changes them.
func (f *logoutFixture) token(t *testing.T, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{
		"iss":    opIssuer,
		"aud":    rpClient,
		"sub":    "alice",
		"sid":    "session-1",
		"iat":    t0.Unix(),
		"exp":    t0.Add(2 * time.Minute).Unix(),
		"jti":    rand.Text(),
		"events": map[string]any{BackChannelLogoutEvent: map[string]any{}},
	}
	if edit != nil {
		edit(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["typ"] = "logout+jwt"
	s, err := tok.SignedString(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *logoutFixture) post(t *testing.T, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.Post(f.url, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("the answer may be cached")
	}
	return resp.StatusCode, body.Desc
}

func TestLogout(t *testing.T) {
	f := newLogoutFixture(t)
	if f.store.Revoked(opIssuer, "j", "alice", t0) {
		t.Fatal("revoked before the logout")
	}
	tok := f.token(t, nil)
	if code, desc := f.post(t, url.Values{"logout_token": {tok}}); code != http.StatusOK {
		t.Fatalf("logout = %d %s, want 200", code, desc)
	}
	if !f.store.Revoked(opIssuer, "j", "alice", t0) || !f.store.Revoked(opIssuer, "j", "alice", t0.Add(999*time.Millisecond)) {
		t.Error("a token of alice issued before the logout is not revoked")
	}
	if f.store.Revoked(opIssuer, "j", "alice", t0.Add(time.Second)) {
		t.Error("a token of alice issued after the logout second is revoked")
	}
	if f.store.Revoked(opIssuer, "j", "bob", t0) || f.store.Revoked("https://other", "j", "alice", t0) {
		t.Error("another subject or issuer is revoked")
	}
	// The same token again: replay.
	if code, desc := f.post(t, url.Values{"logout_token": {tok}}); code != http.StatusBadRequest || !strings.Contains(desc, "already used") {
		t.Errorf("replay = %d %q, want 400 already used", code, desc)
	}
	if want := []string{LogoutOK, LogoutReplayed}; !slices.Equal(f.rec.logouts, want) {
		t.Errorf("recorded = %v, want %v", f.rec.logouts, want)
	}
	// The entry lives MaxTokenLifetime after the logout, then it is dropped
	// with the next logout.
	f.clock.Add(11 * time.Minute)
	bob := f.token(t, func(c jwt.MapClaims) {
		c["sub"] = "bob"
		c["iat"] = f.clock.Now().Unix()
		c["exp"] = f.clock.Now().Add(time.Minute).Unix()
	})
	if code, desc := f.post(t, url.Values{"logout_token": {bob}}); code != http.StatusOK {
		t.Fatalf("logout of bob = %d %s", code, desc)
	}
	if _, subjects := f.store.local.Len(); subjects != 1 {
		t.Errorf("local subject entries = %d, want 1 (alice's expired)", subjects)
	}
}

// TestLogoutRefusals: every way a logout request can be wrong is refused
// with 400 (§2.8) and revokes nothing.
func TestLogoutRefusals(t *testing.T) {
	f := newLogoutFixture(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": opIssuer, "aud": rpClient, "sub": "alice",
		"iat": t0.Unix(), "exp": t0.Add(time.Minute).Unix(), "jti": "x", "events": map[string]any{BackChannelLogoutEvent: map[string]any{}}})
	foreignTok, _ := foreign.SignedString(other)
	tests := []struct {
		name     string
		form     url.Values
		wantDesc string
	}{
		{name: "no token", form: url.Values{}, wantDesc: "exactly one"},
		{name: "two tokens", form: url.Values{"logout_token": {f.token(t, nil), f.token(t, nil)}}, wantDesc: "exactly one"},
		{name: "garbage", form: url.Values{"logout_token": {"a.b.c"}}, wantDesc: "invalid"},
		{name: "other key", form: url.Values{"logout_token": {foreignTok}}, wantDesc: "invalid"},
		{name: "wrong audience", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { c["aud"] = "someone-else" })}}, wantDesc: "invalid"},
		{name: "wrong issuer", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { c["iss"] = "https://evil" })}}, wantDesc: "invalid"},
		{name: "expired", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix() })}}, wantDesc: "invalid"},
		{name: "no events", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { delete(c, "events") })}}, wantDesc: "events"},
		{name: "other event", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { c["events"] = map[string]any{"urn:x": map[string]any{}} })}}, wantDesc: "events"},
		{name: "event not an object", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { c["events"] = map[string]any{BackChannelLogoutEvent: true} })}}, wantDesc: "events"},
		{name: "nonce", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { c["nonce"] = "n" })}}, wantDesc: "nonce"},
		{name: "neither sub nor sid", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { delete(c, "sub"); delete(c, "sid") })}}, wantDesc: "neither"},
		{name: "sid only", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { delete(c, "sub") })}}, wantDesc: "not supported"},
		{name: "no jti", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { delete(c, "jti") })}}, wantDesc: "jti"},
		{name: "exp far ahead", form: url.Values{"logout_token": {f.token(t, func(c jwt.MapClaims) { c["exp"] = t0.Add(24 * time.Hour).Unix() })}}, wantDesc: "ahead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, desc := f.post(t, tt.form)
			if code != http.StatusBadRequest || !strings.Contains(desc, tt.wantDesc) {
				t.Errorf("= %d %q, want 400 with %q", code, desc, tt.wantDesc)
			}
		})
	}
	if f.store.Revoked(opIssuer, "j", "alice", t0.Add(-time.Hour)) {
		t.Error("a refused logout revoked alice")
	}
	// Not a form, not a POST.
	resp, err := http.Post(f.url, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("JSON body = %d, want 400", resp.StatusCode)
	}
	resp, err = http.Get(f.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET = %d Allow %q, want 405 POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestNewLogoutHandlerNeedsOptions(t *testing.T) {
	s, _ := New(Options{})
	if _, err := NewLogoutHandler(s, LogoutOptions{MaxTokenLifetime: time.Minute}); err == nil {
		t.Error("accepted without Verify")
	}
	verify := func(context.Context, string) (map[string]any, error) { return nil, nil }
	if _, err := NewLogoutHandler(s, LogoutOptions{Verify: verify}); err == nil {
		t.Error("accepted without MaxTokenLifetime")
	}
}
