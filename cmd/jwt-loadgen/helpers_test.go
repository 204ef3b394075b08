package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

const (
	testClient = "load gen" // a space, so Basic must form-urlencode it
	testSecret = "s3cret:with/colon"
	testIssuer = "https://issuer.test"
)

// tokenServer is a client_credentials token endpoint that signs real JWTs
// with a lifetime of its choosing and counts what it issued.
type tokenServer struct {
	*httptest.Server
	signer    jwttest.Signer
	lifetime  time.Duration // exp of the JWT
	expiresIn float64       // expires_in of the response
	issued    atomic.Int64
	onIssue   func() // called after each issued token, if set
}

func newTokenServer(t *testing.T, signer jwttest.Signer, lifetime time.Duration, expiresIn float64) *tokenServer {
	t.Helper()
	ts := &tokenServer{signer: signer, lifetime: lifetime, expiresIn: expiresIn}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	// RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
	if !ok || id != url.QueryEscape(testClient) || secret != url.QueryEscape(testSecret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client"}`)
		return
	}
	if r.Method != http.MethodPost || r.PostFormValue("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	now := time.Now()
	n := ts.issued.Add(1)
	claims := jwt.MapClaims{
		"iss": testIssuer, "sub": "loadgen", "aud": "api", "jti": fmt.Sprint(n),
		"iat": now.Unix(),
		// RFC 7519 §2: a fractional NumericDate, so a short lifetime is
		// exact rather than cut to the second.
		"exp": float64(now.Add(ts.lifetime).UnixNano()) / 1e9,
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(ts.signer.Alg), claims)
	tok.Header["kid"] = ts.signer.KID
	signed, err := tok.SignedString(ts.signer.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": signed, "token_type": "Bearer", "expires_in": ts.expiresIn})
	if ts.onIssue != nil {
		ts.onIssue()
	}
}

// hit is one request a target received.
type hit struct {
	at     time.Time
	token  string
	status int
}

// verifyingTarget answers 200 to a request whose bearer JWT verifies now
// (real signature, fractional exp with no leeway) and 401 otherwise, and
// records every request.
type verifyingTarget struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hit
}

func newVerifyingTarget(t *testing.T, signer jwttest.Signer) *verifyingTarget {
	t.Helper()
	vt := &verifyingTarget{}
	// golang-jwt truncates exp to whole seconds; the tokens here live
	// fractions of seconds, so exp is compared here, exactly.
	parser := jwt.NewParser(jwt.WithValidMethods([]string{signer.Alg}), jwt.WithoutClaimsValidation())
	key := signer.Key.Public()
	vt.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := cutBearer(r.Header.Get("Authorization"))
		status := http.StatusUnauthorized
		var claims jwt.MapClaims
		if _, err := parser.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return key, nil }); err == nil {
			if exp, ok := claims["exp"].(float64); ok && float64(time.Now().UnixNano())/1e9 < exp && claims["iss"] == testIssuer {
				status = http.StatusOK
			}
		}
		vt.mu.Lock()
		vt.hits = append(vt.hits, hit{at: time.Now(), token: raw, status: status})
		vt.mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprint(w, "done")
	}))
	t.Cleanup(vt.Close)
	return vt
}

func cutBearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) < len(p) || h[:len(p)] != p {
		return "", false
	}
	return h[len(p):], true
}

// seen returns a copy of the hits so far.
func (vt *verifyingTarget) seen() []hit {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	return append([]hit(nil), vt.hits...)
}
