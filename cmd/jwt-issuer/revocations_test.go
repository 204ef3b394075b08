package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/revocation"
)

// getRevocations fetches /revocations, with If-None-Match etag unless it
// is empty.
func getRevocations(t *testing.T, base, etag string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/revocations", nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusNotModified && len(body) != 0 {
		t.Errorf("a 304 with a body: %s", body)
	}
	return resp, body
}

// parseList reads a published list with the sidecar's own strict parser.
func parseList(t *testing.T, body []byte, now time.Time) revocation.Document {
	t.Helper()
	l, err := revocation.Parse(body, now, 0)
	if err != nil {
		t.Fatalf("the sidecar's parser refuses the list: %v\n%s", err, body)
	}
	return l.Document()
}

func TestRevocationsPublishesRevokedTokens(t *testing.T) {
	s, base := testServer(t, nil)
	newTestClock(s, t0)
	resp, body := getRevocations(t, base, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
		t.Fatalf("empty list = %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	if doc := parseList(t, body, t0); len(doc.Tokens)+len(doc.Subjects) != 0 {
		t.Fatalf("a fresh issuer publishes %s", body)
	}
	emptyTag := resp.Header.Get("ETag")

	tok := issueToken(t, base, nil)
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	if resp, body := revoke(t, base, "demo", "demo-secret", tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}
	// The old ETag no longer matches: the full list comes back.
	resp, body = getRevocations(t, base, emptyTag)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == emptyTag {
		t.Fatalf("after a revocation = %d with ETag %q (was %q)", resp.StatusCode, resp.Header.Get("ETag"), emptyTag)
	}
	doc := parseList(t, body, t0)
	if len(doc.Tokens) != 1 || doc.Tokens[0].JTI != claims["jti"] || doc.Tokens[0].Issuer != s.cfg.IssuerURL ||
		!doc.Tokens[0].Expiry.Equal(t0.Add(s.cfg.TokenTTL)) {
		t.Errorf("published %+v, want the jti %v until the token's exp", doc.Tokens, claims["jti"])
	}
	// Unchanged: 304 with no body, for the ETag and in a list of tags.
	tag := resp.Header.Get("ETag")
	for _, inm := range []string{tag, `"other", W/` + tag, "*"} {
		if resp, _ := getRevocations(t, base, inm); resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != tag {
			t.Errorf("If-None-Match %s = %d, want 304", inm, resp.StatusCode)
		}
	}
	// Entries leave the list when the tokens they cover have expired.
	newTestClock(s, t0.Add(s.cfg.TokenTTL+time.Second))
	if _, body := getRevocations(t, base, ""); len(parseList(t, body, t0).Tokens) != 0 {
		t.Errorf("after the token's exp the list still holds it: %s", body)
	}
}

func TestRevokeSubject(t *testing.T) {
	s, base := testServer(t, func(c *config) { c.Clients = []string{"demo:demo-secret", "other:o-secret"} })
	clock := newTestClock(s, t0)
	old := issueToken(t, base, nil)
	clock.Set(t0.Add(1500 * time.Millisecond))
	if resp, body := postForm(t, base+"/revoke-subject", basic("demo", "demo-secret"), url.Values{}); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke-subject = %d %s", resp.StatusCode, body)
	}
	if got := introspect(t, base, old); got["active"] != false {
		t.Errorf("a token issued before the subject revocation: %v, want inactive", got)
	}
	clock.Set(t0.Add(3 * time.Second))
	if got := introspect(t, base, issueToken(t, base, nil)); got["active"] != true {
		t.Errorf("a token issued after the revocation second: %v, want active", got)
	}
	_, body := getRevocations(t, base, "")
	doc := parseList(t, body, t0)
	if len(doc.Subjects) != 1 || doc.Subjects[0].Subject != "demo" || !doc.Subjects[0].IssuedBefore.Equal(t0.Add(2*time.Second)) ||
		!doc.Subjects[0].Expiry.Equal(t0.Add(2*time.Second+s.cfg.TokenTTL)) {
		t.Errorf("published subjects %+v", doc.Subjects)
	}

	// Refusals: another client's subject, no credentials, GET.
	if resp, _ := postForm(t, base+"/revoke-subject", basic("other", "o-secret"), url.Values{"sub": {"demo"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("another client's subject = %d, want 400", resp.StatusCode)
	}
	if resp, _ := postForm(t, base+"/revoke-subject", "", url.Values{"sub": {"demo"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no credentials = %d, want 401", resp.StatusCode)
	}
	if resp, err := http.Get(base + "/revoke-subject"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET = %v %v, want 405", resp.StatusCode, err)
	}
	if _, body := getRevocations(t, base, ""); len(parseList(t, body, t0).Subjects) != 1 {
		t.Errorf("a refused revocation was published: %s", body)
	}
}

// dpopKey is a client's DPoP key and its RFC 7638 thumbprint, computed
// here by hand from the canonical JSON.
type dpopKey struct {
	key *ecdsa.PrivateKey
	jwk map[string]any
	jkt string
}

func newDPoPKey(t *testing.T) dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x := base64.RawURLEncoding.EncodeToString(k.X.FillBytes(make([]byte, 32)))
	y := base64.RawURLEncoding.EncodeToString(k.Y.FillBytes(make([]byte, 32)))
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return dpopKey{key: k, jwk: map[string]any{"kty": "EC", "crv": "P-256", "x": x, "y": y}, jkt: base64.RawURLEncoding.EncodeToString(sum[:])}
}

func (k dpopKey) proof(t *testing.T, htm, htu string, iat time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"jti": rand.Text(), "htm": htm, "htu": htu, "iat": iat.Unix()})
	tok.Header["typ"] = "dpop+jwt"
	tok.Header["jwk"] = k.jwk
	s, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenWithDPoP posts a client_credentials request with the DPoP headers.
func tokenWithDPoP(t *testing.T, base string, proofs ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basic("demo", "demo-secret"))
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestTokenWithDPoP: RFC 9449 §5: a token request with a valid proof gets a
// DPoP token bound to the proof's key; a bad proof gets invalid_dpop_proof.
func TestTokenWithDPoP(t *testing.T) {
	s, base := testServer(t, nil)
	now := time.Now()
	k := newDPoPKey(t)
	tokenURL := s.endpoint("/token")
	good := k.proof(t, "POST", tokenURL, now)
	status, body := tokenWithDPoP(t, base, good)
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("with a proof = %d %v, want 200 DPoP", status, body)
	}
	at, _ := body["access_token"].(string)
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(at, claims); err != nil {
		t.Fatal(err)
	}
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != k.jkt || claims["jti"] == "" {
		t.Errorf("cnf = %v jti %v, want jkt %s and a jti", claims["cnf"], claims["jti"], k.jkt)
	}
	if got := introspect(t, base, at); got["token_type"] != "DPoP" || got["active"] != true {
		t.Errorf("introspection of a DPoP token = %v", got)
	}

	for name, proofs := range map[string][]string{
		"replayed":     {good},
		"wrong url":    {k.proof(t, "POST", base+"/elsewhere", now)},
		"wrong method": {k.proof(t, "GET", tokenURL, now)},
		"stale":        {k.proof(t, "POST", tokenURL, now.Add(-time.Hour))},
		"two proofs":   {k.proof(t, "POST", tokenURL, now), k.proof(t, "POST", tokenURL, now)},
		"garbage":      {"not-a-jwt"},
	} {
		if status, body := tokenWithDPoP(t, base, proofs...); status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
			t.Errorf("%s = %d %v, want 400 invalid_dpop_proof", name, status, body)
		}
	}
	// No proof: a plain Bearer token, no cnf.
	status, body = tokenWithDPoP(t, base)
	if status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("without a proof = %d %v", status, body)
	}
	plain := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(body["access_token"].(string), plain)
	if _, ok := plain["cnf"]; ok {
		t.Error("a Bearer token has cnf")
	}
}
