package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/test/dpoptest"
)

// nodeKeys and nodeProofs are proofs.mjs's two lines (test/dpoptest).
type (
	nodeKeys   = dpoptest.Keys
	nodeProofs = dpoptest.Proofs
)

// joseProofs builds proofs with jose (test/dpoptest.Jose).
func joseProofs(t *testing.T, input map[string]any, token func(nodeKeys) string) (nodeKeys, nodeProofs) {
	t.Helper()
	return dpoptest.Jose(t, input, token)
}

// resourceServer is a protected resource on 127.0.0.1 that verifies an
// ES256 access token, then its DPoP binding with the Checker, and counts
// what reaches the "upstream" behind it. A refusal answers 401 with the
// challenge and the reason in X-Test-Reason.
type resourceServer struct {
	url      string
	issuer   *ecdsa.PrivateKey
	upstream atomic.Int64
}

func newResourceServer(t *testing.T, c *Checker) *resourceServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rs := &resourceServer{issuer: key}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(reason Reason) {
			w.Header().Set("WWW-Authenticate", Challenge("test", c.Algorithms(), reason))
			if reason == NonceRequired {
				w.Header().Set("DPoP-Nonce", c.nonces.New(c.now()))
			}
			w.Header().Set("X-Test-Reason", string(reason))
			w.WriteHeader(http.StatusUnauthorized)
		}
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		claims := jwt.MapClaims{}
		if _, err := parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil }); err != nil {
			refuse("bad_token")
			return
		}
		cnf, err := ParseConfirmation(claims["cnf"])
		if err != nil {
			refuse("bad_cnf")
			return
		}
		req := Request{Method: r.Method, URI: Target{}.URI(r), Proofs: r.Header.Values("DPoP"), AccessToken: tok}
		if _, err := c.CheckToken(req, scheme, cnf.JKT); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("unclassified error: %v", err)
			}
			refuse(e.Reason)
			return
		}
		rs.upstream.Add(1)
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(srv.Close)
	rs.url = srv.URL
	return rs
}

// token is an access token of the test issuer bound to jkt ("" for none).
func (rs *resourceServer) token(t *testing.T, jkt string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	if jkt != "" {
		c["cnf"] = map[string]any{"jkt": jkt}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(rs.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// send makes one real request and reports the status and the reason.
func (rs *resourceServer) send(t *testing.T, method, path, auth string, proofs ...string) (int, Reason, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, rs.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, Reason(resp.Header.Get("X-Test-Reason")), resp.Header
}

// TestProofsFromJose: proofs built by jose for every case the issue names
// (valid, replayed, wrong method, wrong URL, stale, wrong key, missing), and
// more, sent in real HTTP requests; each refusal proves the upstream saw
// nothing.
func TestProofsFromJose(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	c, err := New(Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rs := newResourceServer(t, c)
	path := "/orders/42?expand=items"
	var tok string
	algTokens := map[string]string{}
	keys, proofs := joseProofs(t, map[string]any{"htm": "GET", "htu": rs.url + path, "now": now.Unix()}, func(k nodeKeys) string {
		for alg, jkt := range k.Algs {
			algTokens[alg] = rs.token(t, jkt) // proofs of the other algs hash tok too
		}
		tok = rs.token(t, k.JKT)
		return tok
	})
	dpop := "DPoP " + tok
	tests := []struct {
		name       string
		method     string
		auth       string
		proofs     []string
		wantStatus int
		wantReason Reason
	}{
		{name: "valid", method: "GET", auth: dpop, proofs: []string{proofs.Cases["valid"]}, wantStatus: http.StatusOK},
		{name: "replayed", method: "GET", auth: dpop, proofs: []string{proofs.Cases["valid"]}, wantStatus: http.StatusUnauthorized, wantReason: Replayed},
		{name: "normalized htu", method: "GET", auth: dpop, proofs: []string{proofs.Cases["normalized"]}, wantStatus: http.StatusOK},
		{name: "wrong method", method: "GET", auth: dpop, proofs: []string{proofs.Cases["wrong_method"]}, wantStatus: http.StatusUnauthorized, wantReason: Mismatch},
		{name: "proof for GET sent with POST", method: "POST", auth: dpop, proofs: []string{proofs.Cases["no_nonce"]}, wantStatus: http.StatusUnauthorized, wantReason: Mismatch},
		{name: "wrong URL", method: "GET", auth: dpop, proofs: []string{proofs.Cases["wrong_url"]}, wantStatus: http.StatusUnauthorized, wantReason: Mismatch},
		{name: "stale", method: "GET", auth: dpop, proofs: []string{proofs.Cases["stale"]}, wantStatus: http.StatusUnauthorized, wantReason: Invalid},
		{name: "future", method: "GET", auth: dpop, proofs: []string{proofs.Cases["future"]}, wantStatus: http.StatusUnauthorized, wantReason: Invalid},
		{name: "wrong key", method: "GET", auth: dpop, proofs: []string{proofs.Cases["wrong_key"]}, wantStatus: http.StatusUnauthorized, wantReason: Mismatch},
		{name: "wrong ath", method: "GET", auth: dpop, proofs: []string{proofs.Cases["wrong_ath"]}, wantStatus: http.StatusUnauthorized, wantReason: Mismatch},
		{name: "no ath", method: "GET", auth: dpop, proofs: []string{proofs.Cases["no_ath"]}, wantStatus: http.StatusUnauthorized, wantReason: Invalid},
		{name: "wrong typ", method: "GET", auth: dpop, proofs: []string{proofs.Cases["wrong_typ"]}, wantStatus: http.StatusUnauthorized, wantReason: Invalid},
		{name: "missing proof", method: "GET", auth: dpop, wantStatus: http.StatusUnauthorized, wantReason: Missing},
		{name: "two proofs", method: "GET", auth: dpop, proofs: []string{proofs.Cases["wrong_key"], proofs.Cases["wrong_key"]}, wantStatus: http.StatusUnauthorized, wantReason: Invalid},
		{name: "bound token as Bearer", method: "GET", auth: "Bearer " + tok, proofs: []string{proofs.Cases["wrong_key"]}, wantStatus: http.StatusUnauthorized, wantReason: BoundAsBearer},
		{name: "unbound token with DPoP scheme", method: "GET", auth: "DPoP " + rs.token(t, ""), proofs: []string{proofs.Cases["wrong_key"]}, wantStatus: http.StatusUnauthorized, wantReason: Mismatch},
		{name: "unbound Bearer token", method: "GET", auth: "Bearer " + rs.token(t, ""), wantStatus: http.StatusOK},
	}
	for alg, p := range proofs.Algs {
		// Each extra alg's proof hashes tok but its own token names its own
		// key: ath fails while the signature and jkt pass, which proves jose
		// and this package agree on the alg and the thumbprint.
		tests = append(tests, struct {
			name       string
			method     string
			auth       string
			proofs     []string
			wantStatus int
			wantReason Reason
		}{name: alg + " signature and thumbprint", method: "GET", auth: "DPoP " + algTokens[alg], proofs: []string{p}, wantStatus: http.StatusUnauthorized, wantReason: Mismatch})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rs.upstream.Load()
			status, reason, h := rs.send(t, tt.method, path, tt.auth, tt.proofs...)
			if status != tt.wantStatus || reason != tt.wantReason {
				t.Fatalf("= %d %q, want %d %q", status, reason, tt.wantStatus, tt.wantReason)
			}
			reached := rs.upstream.Load() - before
			if tt.wantStatus != http.StatusOK {
				if reached != 0 {
					t.Error("a refused request reached the upstream")
				}
				ch := h.Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `algs="ES256 ES384`) || !strings.Contains(ch, `error="`+tt.wantReason.Code()+`"`) {
					t.Errorf("challenge = %q", ch)
				}
			} else if reached != 1 {
				t.Error("an accepted request did not reach the upstream")
			}
		})
	}
	if len(proofs.Algs) != 3 || keys.JKT == "" {
		t.Fatalf("jose gave %d extra algs and jkt %q", len(proofs.Algs), keys.JKT)
	}
}

// TestAlgsFromJose: a proof of each extra alg (ES384, PS256, EdDSA) built by
// jose verifies here, with jose's thumbprint.
func TestAlgsFromJose(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	keys, proofs := joseProofs(t, map[string]any{"htm": "POST", "htu": "https://as.example/token", "now": now.Unix()}, func(nodeKeys) string { return "unused" })
	for alg, raw := range proofs.Algs {
		p, err := ParseProof(raw, DefaultAlgorithms)
		if err != nil {
			t.Errorf("%s: %v", alg, err)
			continue
		}
		if p.JKT != keys.Algs[alg] {
			t.Errorf("%s: thumbprint %s, jose's %s", alg, p.JKT, keys.Algs[alg])
		}
		if p.HTM != "POST" || p.ATH != TokenHash("unused") {
			t.Errorf("%s: claims %+v", alg, p)
		}
	}
}

// TestNonceFromJose: with server nonces (§8), a proof without one is
// answered with use_dpop_nonce and a DPoP-Nonce header; a proof carrying
// that nonce passes.
func TestNonceFromJose(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	nonces, err := NewNonceSource(nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Now: func() time.Time { return now }, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	rs := newResourceServer(t, c)
	var tok string
	_, proofs := joseProofs(t, map[string]any{"htm": "GET", "htu": rs.url + "/x", "now": now.Unix(), "nonce": nonces.New(now)}, func(k nodeKeys) string {
		tok = rs.token(t, k.JKT)
		return tok
	})
	status, reason, h := rs.send(t, "GET", "/x", "DPoP "+tok, proofs.Cases["no_nonce"])
	if status != http.StatusUnauthorized || reason != NonceRequired || h.Get("DPoP-Nonce") == "" ||
		!strings.Contains(h.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Errorf("without nonce = %d %q %v", status, reason, h)
	}
	if status, reason, _ := rs.send(t, "GET", "/x", "DPoP "+tok, proofs.Cases["valid"]); status != http.StatusOK {
		t.Errorf("with the nonce = %d %q", status, reason)
	}
	if rs.upstream.Load() != 1 {
		t.Errorf("upstream saw %d requests, want 1", rs.upstream.Load())
	}
}
