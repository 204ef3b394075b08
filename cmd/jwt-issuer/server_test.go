package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestDiscovery(t *testing.T) {
	_, base := testServer(t, func(c *config) {
		c.IssuerURL = "http://issuer.test:8080"
		c.SigningAlg = "ES256"
	})
	resp, body := get(t, http.DefaultClient, base+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                "http://issuer.test:8080",
		"jwks_uri":                              "http://issuer.test:8080/.well-known/jwks.json",
		"token_endpoint":                        "http://issuer.test:8080/token",
		"grant_types_supported":                 []any{"client_credentials", "authorization_code", "refresh_token"},
		"id_token_signing_alg_values_supported": []any{"ES256"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post"},
	}
	for k, w := range want {
		gb, _ := json.Marshal(got[k])
		wb, _ := json.Marshal(w)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s = %s, want %s", k, gb, wb)
		}
	}
}

func TestJWKS(t *testing.T) {
	for _, alg := range serveAlgs() {
		t.Run(alg, func(t *testing.T) {
			s, base := testServer(t, func(c *config) { c.SigningAlg = alg })
			resp, body := get(t, http.DefaultClient, base+"/.well-known/jwks.json")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=60" {
				t.Errorf("Cache-Control = %q, want public, max-age=60", cc)
			}
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatal(err)
			}
			if len(set.Keys) != 1 {
				t.Fatalf("got %d keys, want 1 without rotation", len(set.Keys))
			}
			k := set.Keys[0]
			if k["kid"] != s.keys.signer().kid || k["alg"] != alg || k["use"] != "sig" {
				t.Errorf("key = %v, want kid %s, alg %s, use sig", k, s.keys.signer().kid, alg)
			}
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := k[private]; ok {
					t.Errorf("JWKS leaks private member %q", private)
				}
			}
		})
	}
}

func TestJWKSMaxAgeFollowsRotation(t *testing.T) {
	_, base := testServer(t, func(c *config) { c.KeyRotationInterval = 20 * time.Second })
	resp, _ := get(t, http.DefaultClient, base+"/.well-known/jwks.json")
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=10" {
		t.Errorf("Cache-Control = %q, want max-age=10 (half the interval)", cc)
	}
}

// postToken sends a token request. basic is "id:secret" or "".
func postToken(t *testing.T, base, basic string, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != "" {
		id, secret, _ := strings.Cut(basic, ":")
		req.SetBasicAuth(id, secret)
	}
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	return resp, got
}

func TestTokenSuccess(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, base := testServer(t, func(c *config) {
		c.IssuerURL = "http://issuer.test"
		c.Clients = []string{"demo:demo-secret", "svc:p+ss:w%rd"}
		c.TokenTTL = 5 * time.Minute
	})
	s.now = func() time.Time { return now }
	_, jwksBody := get(t, http.DefaultClient, base+"/.well-known/jwks.json")
	keyfunc := keyfuncFromJWKS(t, jwksBody)

	tests := []struct {
		name      string
		basic     string
		form      url.Values
		wantSub   string
		wantScope string
	}{
		{name: "basic with scope", basic: "demo:demo-secret", form: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}}, wantSub: "demo", wantScope: "read write"},
		{name: "basic without scope", basic: "demo:demo-secret", form: url.Values{"grant_type": {"client_credentials"}}, wantSub: "demo"},
		{name: "form fields", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {"p+ss:w%rd"}, "scope": {"a:b"}}, wantSub: "svc", wantScope: "a:b"},
		{name: "basic raw secret with colon", basic: "svc:p+ss:w%rd", form: url.Values{"grant_type": {"client_credentials"}}, wantSub: "svc"},
		// RFC 6749 §2.3.1: a client may form-urlencode id and secret first.
		{name: "basic urlencoded", basic: "svc:" + url.QueryEscape("p+ss:w%rd"), form: url.Values{"grant_type": {"client_credentials"}}, wantSub: "svc"},
		{name: "basic with matching client_id field", basic: "demo:demo-secret", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo"}}, wantSub: "demo"},
	}
	jtis := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := postToken(t, base, tt.basic, tt.form)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200: %v", resp.StatusCode, got)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if got["token_type"] != "Bearer" || got["expires_in"] != float64(300) {
				t.Errorf("response = %v, want token_type Bearer, expires_in 300", got)
			}
			if scope, ok := got["scope"]; (tt.wantScope == "" && ok) || (tt.wantScope != "" && scope != tt.wantScope) {
				t.Errorf("response scope = %v, want %q", scope, tt.wantScope)
			}
			tok, _ := got["access_token"].(string)
			claims := jwt.MapClaims{}
			parsed, err := jwt.ParseWithClaims(tok, claims, keyfunc,
				jwt.WithTimeFunc(func() time.Time { return now }),
				jwt.WithValidMethods([]string{"RS256"}),
				jwt.WithIssuer("http://issuer.test"),
				jwt.WithAudience("demo-api"),
				jwt.WithExpirationRequired(),
			)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if parsed.Header["kid"] != s.keys.signer().kid {
				t.Errorf("kid = %v, want %s", parsed.Header["kid"], s.keys.signer().kid)
			}
			wantClaims := map[string]any{
				"sub": tt.wantSub, "client_id": tt.wantSub, "aud": "demo-api",
				"iat": float64(now.Unix()), "nbf": float64(now.Unix()), "exp": float64(now.Unix() + 300),
			}
			for k, w := range wantClaims {
				if claims[k] != w {
					t.Errorf("%s = %v, want %v", k, claims[k], w)
				}
			}
			if scope, ok := claims["scope"]; (tt.wantScope == "" && ok) || (tt.wantScope != "" && scope != tt.wantScope) {
				t.Errorf("scope claim = %v, want %q", scope, tt.wantScope)
			}
			jti, _ := claims["jti"].(string)
			if len(jti) < 16 || jtis[jti] {
				t.Errorf("jti = %q, want a fresh random value", jti)
			}
			jtis[jti] = true
		})
	}
}

func TestTokenErrors(t *testing.T) {
	_, base := testServer(t, nil)
	good := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name        string
		contentType string
		body        string
		query       string
		auth        string // raw Authorization header
		wantStatus  int
		wantError   string
	}{
		{name: "no client auth", body: good.Encode(), wantStatus: 401, wantError: "invalid_client"},
		{name: "wrong secret basic", body: good.Encode(), auth: basic("demo", "nope"), wantStatus: 401, wantError: "invalid_client"},
		{name: "unknown client basic", body: good.Encode(), auth: basic("who", "demo-secret"), wantStatus: 401, wantError: "invalid_client"},
		{name: "wrong secret form", body: "grant_type=client_credentials&client_id=demo&client_secret=nope", wantStatus: 401, wantError: "invalid_client"},
		{name: "empty secret form", body: "grant_type=client_credentials&client_id=demo&client_secret=", wantStatus: 401, wantError: "invalid_client"},
		{name: "client_id without secret", body: "grant_type=client_credentials&client_id=demo", wantStatus: 401, wantError: "invalid_client"},
		{name: "bearer instead of basic", body: good.Encode(), auth: "Bearer abc", wantStatus: 401, wantError: "invalid_client"},
		{name: "credentials in the query are ignored", body: good.Encode(), query: "?client_id=demo&client_secret=demo-secret", wantStatus: 401, wantError: "invalid_client"},
		{name: "basic and form secret", body: "grant_type=client_credentials&client_secret=demo-secret", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "client_id differs from basic", body: "grant_type=client_credentials&client_id=other", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "missing grant_type", body: "scope=read", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "unsupported grant_type", body: "grant_type=password&username=a&password=b", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "unknown authorization code", body: "grant_type=authorization_code&code=x", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_grant"},
		{name: "repeated parameter", body: "grant_type=client_credentials&grant_type=client_credentials", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "json body", contentType: "application/json", body: `{"grant_type":"client_credentials"}`, auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "no content type", contentType: "-", body: good.Encode(), auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "bad form encoding", body: "grant_type=%zz", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "body too large", body: "grant_type=client_credentials&pad=" + strings.Repeat("a", maxFormBytes), auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_request"},
		{name: "scope with double space", body: "grant_type=client_credentials&scope=a++b", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_scope"},
		{name: "scope with quote", body: "grant_type=client_credentials&scope=%22a%22", auth: basic("demo", "demo-secret"), wantStatus: 400, wantError: "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, base+"/token"+tt.query, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, got := doJSON(t, req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got["error"] != tt.wantError {
				t.Errorf("error = %v, want %s (%v)", got["error"], tt.wantError, got)
			}
			if _, ok := got["access_token"]; ok {
				t.Error("an error response carries an access_token")
			}
			if tt.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("WWW-Authenticate = %q, want a Basic challenge", resp.Header.Get("WWW-Authenticate"))
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
		})
	}
}

func basic(id, secret string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(id, secret)
	return r.Header.Get("Authorization")
}

func TestTokenWrongMethod(t *testing.T) {
	_, base := testServer(t, nil)
	resp, _ := get(t, http.DefaultClient, base+"/token")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token status = %d, want 405", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	_, base := testServer(t, nil)
	resp, body := get(t, http.DefaultClient, base+"/healthz")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// TestRotation drives rotation with an injected clock: the next key is
// published before it signs anything, and a retired key stays until every
// token it signed has expired, then disappears.
func TestRotation(t *testing.T) {
	const ttl = 10 * time.Minute
	clock := time.Unix(1_800_000_000, 0)
	s, base := testServer(t, func(c *config) {
		c.SigningAlg = "ES256"
		c.KeyRotationInterval = time.Hour
		c.TokenTTL = ttl
	})
	s.now = func() time.Time { return clock }

	jwks := func() []byte {
		t.Helper()
		_, body := get(t, http.DefaultClient, base+"/.well-known/jwks.json")
		return body
	}
	mint := func() (string, string) {
		t.Helper()
		resp, got := postToken(t, base, "demo:demo-secret", url.Values{"grant_type": {"client_credentials"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token status = %d: %v", resp.StatusCode, got)
		}
		tok := got["access_token"].(string)
		h, _ := decode(t, tok)
		return tok, h["kid"].(string)
	}
	verify := func(tok string, set []byte) error {
		_, err := jwt.Parse(tok, keyfuncFromJWKS(t, set), jwt.WithTimeFunc(func() time.Time { return clock }))
		return err
	}

	kids0 := jwksKIDs(t, jwks())
	if len(kids0) != 2 {
		t.Fatalf("kids = %v, want current and next", kids0)
	}
	k0, k1 := kids0[0], kids0[1]
	tokA, kidA := mint()
	if kidA != k0 {
		t.Fatalf("token kid = %s, want the current key %s", kidA, k0)
	}

	// Just before the tick, the last token of k0.
	clock = clock.Add(time.Hour - time.Second)
	tokB, _ := mint()
	clock = clock.Add(time.Second)
	if _, err := s.keys.rotate(clock); err != nil {
		t.Fatal(err)
	}
	retiredAt := clock

	set := jwks()
	kids1 := jwksKIDs(t, set)
	if len(kids1) != 3 || kids1[0] != k1 || kids1[2] != k0 || slices.Contains(kids0, kids1[1]) {
		t.Fatalf("after rotation kids = %v, want [%s <new next> %s]", kids1, k1, k0)
	}
	k2 := kids1[1]
	tokC, kidC := mint()
	if kidC != k1 {
		t.Errorf("after rotation token kid = %s, want the former next key %s", kidC, k1)
	}
	if err := verify(tokB, set); err != nil {
		t.Errorf("token of the retired key does not verify against the new JWKS: %v", err)
	}
	if err := verify(tokC, set); err != nil {
		t.Errorf("token of the new current key does not verify: %v", err)
	}
	if err := verify(tokA, set); err == nil {
		t.Error("the first token is still valid after an hour")
	}

	// The retired key stays until its last token expires...
	clock = retiredAt.Add(ttl)
	if kids := jwksKIDs(t, jwks()); !slices.Contains(kids, k0) {
		t.Errorf("at retirement+ttl kids = %v, want %s still there", kids, k0)
	}
	// ...and then disappears; current and next stay.
	clock = retiredAt.Add(ttl + time.Second)
	if kids := jwksKIDs(t, jwks()); !slices.Equal(kids, []string{k1, k2}) {
		t.Errorf("after retirement+ttl kids = %v, want [%s %s]", kids, k1, k2)
	}

	// A second rotation: k2 signs, k1 retires, a new next appears.
	clock = retiredAt.Add(time.Hour)
	if _, err := s.keys.rotate(clock); err != nil {
		t.Fatal(err)
	}
	kids2 := jwksKIDs(t, jwks())
	if len(kids2) != 3 || kids2[0] != k2 || kids2[2] != k1 {
		t.Errorf("after the second rotation kids = %v, want [%s <new next> %s]", kids2, k2, k1)
	}
	if _, kid := mint(); kid != k2 {
		t.Errorf("token kid = %s, want %s", kid, k2)
	}
}

func TestRotateWithoutRotation(t *testing.T) {
	s, _ := testServer(t, nil)
	if _, err := s.keys.rotate(time.Now()); err == nil {
		t.Error("rotate with KEY_ROTATION_INTERVAL=0 succeeded")
	}
}

// TestServeAgreesWithMint runs the real serve on a key file and checks that
// a token minted from the same file verifies against the served JWKS, for
// every serve alg.
func TestServeAgreesWithMint(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range serveAlgs() {
		t.Run(alg, func(t *testing.T) {
			path := writeKey(t, dir, alg)
			base := startServe(t, "SIGNING_ALG="+alg, "SIGNING_KEY_FILE="+path)
			_, set := get(t, http.DefaultClient, base+"/.well-known/jwks.json")
			tok := strings.TrimSpace(runCLI(t, "mint", "-key", path, "-iss", base))
			_, err := jwt.Parse(tok, keyfuncFromJWKS(t, set), jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(base))
			if err != nil {
				t.Errorf("minted token does not verify against the served JWKS: %v", err)
			}
			if got, want := jwksKIDs(t, set), jwksKIDs(t, []byte(runCLI(t, "jwks", "-key", path))); !slices.Equal(got, want) {
				t.Errorf("served kids %v, jwks kids %v", got, want)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ecKey := writeKey(t, dir, "ES256")
	tests := []struct {
		name    string
		environ []string
		wantErr []string
	}{
		{name: "bad alg", environ: []string{"SIGNING_ALG=HS256"}, wantErr: []string{"SIGNING_ALG"}},
		{name: "bad duration", environ: []string{"TOKEN_TTL=soon"}, wantErr: []string{"TOKEN_TTL"}},
		{name: "several problems", environ: []string{"TOKEN_TTL=0s", "ISSUER_URL=issuer", "CLIENTS=nosecret", "KEY_ROTATION_INTERVAL=-1s"},
			wantErr: []string{"TOKEN_TTL", "ISSUER_URL", "CLIENTS", "KEY_ROTATION_INTERVAL"}},
		{name: "key does not fit alg", environ: []string{"SIGNING_KEY_FILE=" + ecKey}, wantErr: []string{"SIGNING_KEY_FILE", "SIGNING_ALG"}},
		{name: "missing key file", environ: []string{"SIGNING_KEY_FILE=" + dir + "/missing"}, wantErr: []string{"SIGNING_KEY_FILE"}},
		{name: "port in use", environ: nil, wantErr: []string{"LISTEN_ADDR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			environ := tt.environ
			if tt.name == "port in use" {
				_, base := testServer(t, nil)
				environ = []string{"LISTEN_ADDR=" + strings.TrimPrefix(base, "http://")}
			}
			var stderr bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a config that passes would stop at once
			if code := run(ctx, nil, io.Discard, &stderr, environ); code != 1 {
				t.Errorf("exit = %d, want 1", code)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr = %q, want it to name %s", stderr.String(), w)
				}
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	help := runCLI(t, "--help")
	for _, want := range []string{
		"DEVELOPMENT", "production", "genkey", "mint", "jwks", "pubkey",
		"LISTEN_ADDR", ":8080", "ISSUER_URL", "SIGNING_ALG", "SIGNING_KEY_FILE",
		"KEY_ROTATION_INTERVAL", "TOKEN_TTL", "10m", "AUDIENCE", "demo-api", "CLIENTS", "demo:demo-secret",
		"-no-kid", "-claim", "-header", "-ttl", "-nbf", "-iat", "-out", "-jti",
		"CLIENT_KEYS", "assertion flags:", "-client", "/introspect", "/revoke", "/metrics",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if h := runCLI(t, "-h"); h != help {
		t.Error("-h differs from --help")
	}
	if v := runCLI(t, "--version"); !strings.HasPrefix(v, "jwt-issuer ") {
		t.Errorf("--version = %q", v)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, io.Discard, &stderr, nil); code != 2 {
		t.Errorf("unknown subcommand exit = %d, want 2", code)
	}
}
