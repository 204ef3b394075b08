package proxy

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// compact assembles a compact JWS from raw parts, for tokens no library
// would produce.
func compact(header, payload string, sig []byte) string {
	return b64(header) + "." + b64(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func payloadJSON(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// hmacWith signs c with HS256 and key as the secret, kid set to kid.
func hmacWith(t testing.TB, c jwt.MapClaims, kid string, key []byte) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRFC8725Attacks sends the known JWT attacks through the whole proxy.
// Each must be refused with 401 invalid_token and reach nothing upstream.
func TestRFC8725Attacks(t *testing.T) {
	k := allKeys(t)
	valid := claims(issA)
	payload := payloadJSON(t, valid)

	// An attacker's JWKS server: any request to it is a failure.
	var attackerHits atomic.Int64
	attackerKey := newSigner(t, "RS256", "attacker")
	attackerJWK, err := jwkset.NewJWKFromKey(attackerKey.Key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "attacker", USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	attackerJWKJSON := attackerJWK.Marshal()
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{attackerJWKJSON}})
	}))
	t.Cleanup(attacker.Close)

	der, err := x509.MarshalPKIXPublicKey(k.rsa.Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	validTok := k.rsa.Sign(t, valid)
	parts := strings.Split(validTok, ".")
	flipped := with(valid, "sub", "mallory")

	oversized := k.rsa.Sign(t, with(valid, "pad", strings.Repeat("x", 9<<10)))

	tests := []struct {
		name       string
		token      string
		wantReason string // "" when any invalid_token reason will do
	}{
		{name: "alg none", token: compact(`{"alg":"none","typ":"JWT"}`, payload, nil), wantReason: "bad_algorithm"},
		{name: "alg None", token: compact(`{"alg":"None","typ":"JWT"}`, payload, nil), wantReason: "bad_algorithm"},
		{name: "alg NONE", token: compact(`{"alg":"NONE","typ":"JWT"}`, payload, nil), wantReason: "bad_algorithm"},
		{name: "alg nOnE", token: compact(`{"alg":"nOnE","typ":"JWT"}`, payload, nil), wantReason: "bad_algorithm"},
		{name: "alg none with kid", token: compact(`{"alg":"none","kid":"rsa-1"}`, payload, nil), wantReason: "bad_algorithm"},
		{name: "HS256 with the PEM public key as secret", token: hmacWith(t, valid, "rsa-1", pemBytes), wantReason: "bad_algorithm"},
		{name: "HS256 with the DER public key as secret", token: hmacWith(t, valid, "rsa-1", der), wantReason: "bad_algorithm"},
		{
			name: "embedded jwk header",
			token: attackerKey.SignWith(t, valid, map[string]any{
				"jwk": attackerJWKJSON,
			}),
			wantReason: "unknown_key",
		},
		{
			name:       "embedded jwk with a trusted kid",
			token:      signer{KID: "rsa-1", Alg: "RS256", Key: attackerKey.Key}.SignWith(t, valid, map[string]any{"jwk": attackerJWKJSON}),
			wantReason: "bad_signature",
		},
		{name: "jku header", token: attackerKey.SignWith(t, valid, map[string]any{"jku": attacker.URL + "/jwks.json"}), wantReason: "unknown_key"},
		{name: "x5u header", token: attackerKey.SignWith(t, valid, map[string]any{"x5u": attacker.URL + "/cert.pem"}), wantReason: "unknown_key"},
		{name: "kid path traversal", token: signer{KID: "../../etc/passwd", Alg: "RS256", Key: attackerKey.Key}.Sign(t, valid), wantReason: "unknown_key"},
		{name: "kid /dev/null with HS256", token: hmacWith(t, valid, "/dev/null", []byte{}), wantReason: "bad_algorithm"},
		{name: "kid SQL injection", token: signer{KID: "x' UNION SELECT 'secret' --", Alg: "RS256", Key: attackerKey.Key}.Sign(t, valid), wantReason: "unknown_key"},
		{name: "kid of another issuer's key", token: k.issuerB.Sign(t, valid), wantReason: "unknown_key"},
		{name: "psychic ECDSA signature", token: compact(`{"alg":"ES256","kid":"ec-1","typ":"JWT"}`, payload, make([]byte, 64)), wantReason: "bad_signature"},
		{name: "psychic ECDSA signature without kid", token: compact(`{"alg":"ES256","typ":"JWT"}`, payload, make([]byte, 64))},
		{name: "tampered payload", token: parts[0] + "." + b64(payloadJSON(t, flipped)) + "." + parts[2], wantReason: "bad_signature"},
		{name: "signature of another token", token: parts[0] + "." + parts[1] + "." + strings.Split(k.rsa.Sign(t, flipped), ".")[2], wantReason: "bad_signature"},
		{name: "stripped signature", token: parts[0] + "." + parts[1] + ".", wantReason: "bad_signature"},
		{name: "wrong issuer", token: k.rsa.Sign(t, with(valid, "iss", issB)), wantReason: "unknown_key"},
		{name: "unknown issuer", token: k.rsa.Sign(t, with(valid, "iss", "https://evil.test")), wantReason: "bad_issuer"},
		{name: "no issuer", token: k.rsa.Sign(t, with(valid, "iss", nil)), wantReason: "bad_issuer"},
		{name: "wrong audience", token: k.rsa.Sign(t, with(valid, "aud", []string{"other", "another"})), wantReason: "bad_audience"},
		{name: "no audience", token: k.rsa.Sign(t, with(valid, "aud", nil)), wantReason: "bad_audience"},
		{name: "expired", token: k.rsa.Sign(t, with(valid, "exp", base.Add(-31*time.Second).Unix())), wantReason: "expired"},
		{name: "no exp", token: k.rsa.Sign(t, with(valid, "exp", nil)), wantReason: "malformed"},
		{name: "nbf in the future", token: k.rsa.Sign(t, with(valid, "nbf", base.Add(time.Minute).Unix())), wantReason: "not_yet_valid"},
		{name: "iat in the future", token: k.rsa.Sign(t, with(valid, "iat", base.Add(time.Hour).Unix())), wantReason: "not_yet_valid"},
		{name: "oversized token", token: oversized, wantReason: "malformed"},
		{name: "two segments", token: parts[0] + "." + parts[1], wantReason: "malformed"},
		{name: "four segments", token: validTok + "." + parts[2], wantReason: "malformed"},
		{name: "bad base64 header", token: "eyJhbGciOiJSUzI1NiJ9x." + parts[1] + "." + parts[2], wantReason: "malformed"},
		{name: "characters outside base64url", token: parts[0] + "." + parts[1] + "+/=." + parts[2], wantReason: "malformed"},
		{name: "non-JSON header", token: b64("not json") + "." + parts[1] + "." + parts[2], wantReason: "malformed"},
		{name: "non-JSON payload", token: compact(`{"alg":"RS256","kid":"rsa-1"}`, "not json", []byte("sig")), wantReason: "malformed"},
		{name: "unknown crit", token: k.rsa.SignWith(t, valid, map[string]any{"crit": []string{"exp"}, "exp": 1}), wantReason: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, nil)
			rec := h.serve(bearer("/api", tt.token))
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", rec.Code)
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q, want invalid_token", got)
			}
			if tt.wantReason != "" {
				if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": string(verifier.Unauthenticated), "reason": tt.wantReason}); got != 1 {
					t.Errorf("requests_total{unauthenticated,%s} = %v, want 1 (log: %s)", tt.wantReason, got, h.logs)
				}
			}
			if got := len(h.upstream.requests()); got != 0 {
				t.Errorf("upstream saw %d requests, want 0", got)
			}
		})
	}
	if got := attackerHits.Load(); got != 0 {
		t.Errorf("the attacker's key server got %d requests, want 0", got)
	}
}

// TestForgedClaimHeaders shows that a client can never set a claim header.
func TestForgedClaimHeaders(t *testing.T) {
	k := allKeys(t)
	tok := k.rsa.Sign(t, claims(issA))
	forge := func(r *http.Request) *http.Request {
		r.Header["X-Auth-Subject"] = []string{"root"}
		r.Header["X_auth_subject"] = []string{"root"} // CGI and friends read this as X-Auth-Subject
		r.Header["X-Auth-Roles"] = []string{"superuser"}
		r.Header["X-Auth-Payload"] = []string{b64(`{"sub":"root"}`)}
		return r
	}
	tests := []struct {
		name         string
		req          *http.Request
		wantStatus   int
		wantUpstream bool
		wantSubject  string
		wantRoles    string
	}{
		{name: "with a valid token", req: forge(bearer("/api", tok)), wantStatus: 200, wantUpstream: true, wantSubject: "alice", wantRoles: "admin,user"},
		{name: "with a valid token lacking the claim", req: forge(bearer("/api", k.rsa.Sign(t, with(claims(issA), "realm_access", nil)))), wantStatus: 200, wantUpstream: true, wantSubject: "alice", wantRoles: ""},
		{name: "without a token", req: forge(get("/api")), wantStatus: 401},
		{name: "with a bad token", req: forge(bearer("/api", "x.y.z")), wantStatus: 401},
		{name: "on a public path", req: forge(get("/public/x")), wantStatus: 200, wantUpstream: true},
		{name: "Connection option naming a claim header", req: func() *http.Request {
			r := bearer("/api", tok)
			r.Header.Set("Connection", "keep-alive, X-Auth-Subject, x_auth_roles")
			return r
		}(), wantStatus: 200, wantUpstream: true, wantSubject: "alice", wantRoles: "admin,user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.PayloadHeader = "X-Auth-Payload" })
			rec := h.serve(tt.req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			reqs := h.upstream.requests()
			if !tt.wantUpstream {
				if len(reqs) != 0 {
					t.Errorf("upstream saw %d requests, want 0", len(reqs))
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("upstream saw %d requests, want 1", len(reqs))
			}
			got := reqs[0].Header
			if v := got.Values("X-Auth-Subject"); strings.Join(v, ",") != tt.wantSubject {
				t.Errorf("X-Auth-Subject = %q, want %q", v, tt.wantSubject)
			}
			if v := got.Values("X-Auth-Roles"); strings.Join(v, ",") != tt.wantRoles {
				t.Errorf("X-Auth-Roles = %q, want %q", v, tt.wantRoles)
			}
			if v := got.Values("X_auth_subject"); len(v) != 0 {
				t.Errorf("X_auth_subject = %q, want it removed", v)
			}
			for _, v := range got.Values("X-Auth-Payload") {
				if v == b64(`{"sub":"root"}`) {
					t.Errorf("X-Auth-Payload is the forged value")
				}
			}
		})
	}
}

// TestRemoteJWKS runs the proxy with keys from a real JWKS server: a token
// signed by a published key passes, one signed by an unpublished key does
// not, and nothing else is fetched because of what a token says.
func TestRemoteJWKS(t *testing.T) {
	k := allKeys(t)
	jwk, err := jwkset.NewJWKFromKey(k.ec.Key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.ec.KID, USE: jwkset.UseSig, ALG: jwkset.AlgES256}})
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int64
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk.Marshal()}})
	}))
	t.Cleanup(jwks.Close)
	keys, err := keys.NewKeys(keys.KeyOptions{RefetchCooldown: time.Hour}, nil, nil,
		keys.NewRemoteSource(jwks.URL, []string{issA}, jwks.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{Keys: keys, Audiences: []string{aud}, Now: func() time.Time { return base }})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Verifier = v })
	tests := []struct {
		name       string
		token      string
		wantStatus int
	}{
		{name: "published key", token: k.ec.Sign(t, claims(issA)), wantStatus: http.StatusOK},
		{name: "unpublished key", token: signer{KID: "ec-2", Alg: "ES256", Key: newSigner(t, "ES256", "").Key}.Sign(t, claims(issA)), wantStatus: http.StatusUnauthorized},
		{name: "published kid, wrong key", token: signer{KID: k.ec.KID, Alg: "ES256", Key: newSigner(t, "ES256", "").Key}.Sign(t, claims(issA)), wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.upstream.requests())
			rec := h.serve(bearer("/api", tt.token))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			wantSeen := before
			if tt.wantStatus == http.StatusOK {
				wantSeen++
			}
			if got := len(h.upstream.requests()); got != wantSeen {
				t.Errorf("upstream saw %d requests, want %d", got, wantSeen)
			}
		})
	}
	// One load at start and at most one unknown-kid refetch (cooldown).
	if got := fetches.Load(); got > 2 {
		t.Errorf("JWKS fetched %d times, want at most 2", got)
	}
}
