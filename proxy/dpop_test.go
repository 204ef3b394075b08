package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
	"github.com/jwt-sidecar/jwt-sidecar/test/dpoptest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// joseProofs builds proofs with jose (test/dpoptest.Jose) for the access
// token that token returns for jose's key thumbprint; it answers the proof
// of each case.
func joseProofs(t *testing.T, input map[string]any, token func(jkt string) string) map[string]string {
	t.Helper()
	_, proofs := dpoptest.Jose(t, input, func(k dpoptest.Keys) string { return token(k.JKT) })
	return proofs.Cases
}

// dpopHarness is the proxy with the real verifier and a DPoP checker on the
// tests' clock, served on 127.0.0.1.
func dpopHarness(t *testing.T, nonces *dpop.NonceSource) (*harness, *httptest.Server) {
	t.Helper()
	checker, err := dpop.New(dpop.Options{Now: func() time.Time { return base }, Leeway: 30 * time.Second, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	sender := &verifier.SenderConstraint{Checker: checker, Nonces: nonces}
	h := newHarness(t, verifierConfig{cacheSize: 100, sender: sender}, func(o *testOptions) {
		o.DPoPAlgorithms = checker.Algorithms()
	})
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	return h, srv
}

// send makes one real request through the sidecar's handler.
func send(t *testing.T, method, target, auth string, proofs ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
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
	return resp
}

// TestDPoPThroughTheProxy: proofs built by jose, sent in real requests
// through the proxy with a DPoP-bound token of the real verifier's issuer.
// Each refusal is counted under its reason, carries the RFC 9449 §7.1 DPoP
// challenge with the accepted algs, and never reaches the upstream.
func TestDPoPThroughTheProxy(t *testing.T) {
	h, srv := dpopHarness(t, nil)
	k := allKeys(t)
	path := "/orders/42?expand=items"
	var tok string
	proofs := joseProofs(t, map[string]any{"htm": "GET", "htu": srv.URL + path, "now": base.Unix()}, func(jkt string) string {
		tok = k.ec.Sign(t, with(claims(issA), "cnf", map[string]any{"jkt": jkt}))
		return tok
	})
	unbound := k.ec.Sign(t, claims(issA))
	dpopAuth := "DPoP " + tok
	tests := []struct {
		name       string
		method     string
		auth       string
		proofs     []string
		wantStatus int
		wantReason verifier.Reason
	}{
		// First, while the valid proof is unspent: the scheme is checked
		// before the proof, so this spends nothing.
		{name: "bound token as Bearer", method: "GET", auth: "Bearer " + tok, proofs: []string{proofs["valid"]}, wantStatus: 401, wantReason: verifier.DPoPBoundAsBearer},
		{name: "valid", method: "GET", auth: dpopAuth, proofs: []string{proofs["valid"]}, wantStatus: 200},
		{name: "replayed", method: "GET", auth: dpopAuth, proofs: []string{proofs["valid"]}, wantStatus: 401, wantReason: verifier.DPoPReplayed},
		{name: "wrong method", method: "GET", auth: dpopAuth, proofs: []string{proofs["wrong_method"]}, wantStatus: 401, wantReason: verifier.DPoPMismatch},
		{name: "proof for GET sent with DELETE", method: "DELETE", auth: dpopAuth, proofs: []string{proofs["no_nonce"]}, wantStatus: 401, wantReason: verifier.DPoPMismatch},
		{name: "wrong URL", method: "GET", auth: dpopAuth, proofs: []string{proofs["wrong_url"]}, wantStatus: 401, wantReason: verifier.DPoPMismatch},
		{name: "stale", method: "GET", auth: dpopAuth, proofs: []string{proofs["stale"]}, wantStatus: 401, wantReason: verifier.DPoPInvalid},
		{name: "future", method: "GET", auth: dpopAuth, proofs: []string{proofs["future"]}, wantStatus: 401, wantReason: verifier.DPoPInvalid},
		{name: "wrong key", method: "GET", auth: dpopAuth, proofs: []string{proofs["wrong_key"]}, wantStatus: 401, wantReason: verifier.DPoPMismatch},
		{name: "wrong ath", method: "GET", auth: dpopAuth, proofs: []string{proofs["wrong_ath"]}, wantStatus: 401, wantReason: verifier.DPoPMismatch},
		{name: "missing proof", method: "GET", auth: dpopAuth, wantStatus: 401, wantReason: verifier.DPoPMissing},
		{name: "missing proof on a cache hit", method: "GET", auth: dpopAuth, wantStatus: 401, wantReason: verifier.DPoPMissing},
		{name: "unbound token with the DPoP scheme", method: "GET", auth: "DPoP " + unbound, proofs: []string{proofs["normalized"]}, wantStatus: 401, wantReason: verifier.DPoPMismatch},
		{name: "equivalent URL written differently", method: "GET", auth: dpopAuth, proofs: []string{proofs["normalized"]}, wantStatus: 200},
		{name: "unbound Bearer token, stray DPoP header ignored", method: "GET", auth: "Bearer " + unbound, proofs: []string{"not a proof"}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.upstream.requests())
			var refusals float64
			if tt.wantReason != "" {
				refusals = counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": "unauthenticated", "reason": string(tt.wantReason)})
			}
			resp := send(t, tt.method, srv.URL+path, tt.auth, tt.proofs...)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (WWW-Authenticate %q)", resp.StatusCode, tt.wantStatus, resp.Header.Values("WWW-Authenticate"))
			}
			reached := len(h.upstream.requests()) - before
			if tt.wantStatus == 200 {
				if reached != 1 {
					t.Fatalf("upstream saw %d requests, want 1", reached)
				}
				return
			}
			if reached != 0 {
				t.Fatal("a refused request reached the upstream")
			}
			got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": "unauthenticated", "reason": string(tt.wantReason)})
			if got != refusals+1 {
				t.Errorf("refusals with reason %s: %v, want %v", tt.wantReason, got, refusals+1)
			}
			want := dpop.Challenge("jwt-sidecar", dpop.DefaultAlgorithms, dpop.Reason(tt.wantReason))
			if ch := resp.Header.Values("WWW-Authenticate"); len(ch) != 1 || ch[0] != want {
				t.Errorf("WWW-Authenticate = %q, want %q", ch, want)
			}
			if !strings.Contains(want, `algs="ES256 ES384 ES512 PS256`) {
				t.Errorf("challenge without algs: %q", want)
			}
		})
	}
	// Without credentials, both schemes are offered (RFC 9449 §7.1).
	resp := send(t, "GET", srv.URL+path, "")
	if ch := resp.Header.Values("WWW-Authenticate"); resp.StatusCode != 401 || len(ch) != 2 ||
		ch[0] != `Bearer realm="jwt-sidecar"` || !strings.HasPrefix(ch[1], `DPoP realm="jwt-sidecar", algs="ES256`) {
		t.Errorf("no credentials: %d %q", resp.StatusCode, ch)
	}
}

// TestDPoPNonceThroughTheProxy: with server nonces, a proof without one is
// answered use_dpop_nonce with a DPoP-Nonce header; jose's proof carrying
// a nonce of this server passes.
func TestDPoPNonceThroughTheProxy(t *testing.T) {
	nonces, err := dpop.NewNonceSource(nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h, srv := dpopHarness(t, nonces)
	k := allKeys(t)
	var tok string
	proofs := joseProofs(t, map[string]any{"htm": "GET", "htu": srv.URL + "/x", "now": base.Unix(), "nonce": nonces.New(base)}, func(jkt string) string {
		tok = k.ec.Sign(t, with(claims(issA), "cnf", map[string]any{"jkt": jkt}))
		return tok
	})
	resp := send(t, "GET", srv.URL+"/x", "DPoP "+tok, proofs["no_nonce"])
	if resp.StatusCode != 401 || !nonces.Valid(resp.Header.Get("DPoP-Nonce"), base) ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Errorf("without a nonce: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := send(t, "GET", srv.URL+"/x", "DPoP "+tok, proofs["valid"]); resp.StatusCode != 200 {
		t.Errorf("with the nonce: %d %v", resp.StatusCode, resp.Header)
	}
	if n := len(h.upstream.requests()); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}
}

// TestMTLSBoundThroughTheProxy: a token bound to a client certificate
// (RFC 8705 cnf x5t#S256) passes over a real TLS connection presenting
// that certificate, and is refused without one or with another, before
// the upstream.
func TestMTLSBoundThroughTheProxy(t *testing.T) {
	h := newHarness(t, verifierConfig{}, nil)
	srv := httptest.NewUnstartedServer(h.handler)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	mine, other := selfSignedClientCert(t, "mine"), selfSignedClientCert(t, "other")
	k := allKeys(t)
	tok := k.ec.Sign(t, with(claims(issA), "cnf", map[string]any{"x5t#S256": dpop.CertThumbprint(mine.Leaf)}))
	tests := []struct {
		name       string
		cert       *tls.Certificate
		wantStatus int
		wantReason verifier.Reason
	}{
		{name: "the bound certificate", cert: &mine, wantStatus: 200},
		{name: "no certificate", wantStatus: 401, wantReason: verifier.MTLSMissing},
		{name: "another certificate", cert: &other, wantStatus: 401, wantReason: verifier.MTLSMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := srv.Client().Transport.(*http.Transport).Clone()
			if tt.cert != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{*tt.cert}
			}
			t.Cleanup(tr.CloseIdleConnections)
			req, _ := http.NewRequest("GET", srv.URL+"/orders", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			before := len(h.upstream.requests())
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			reached := len(h.upstream.requests()) - before
			if tt.wantStatus != 200 {
				if reached != 0 {
					t.Fatal("a refused request reached the upstream")
				}
				want := `Bearer realm="jwt-sidecar", error="invalid_token", error_description="` + tt.wantReason.Description() + `"`
				if got := resp.Header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
			} else if reached != 1 {
				t.Fatalf("upstream saw %d requests, want 1", reached)
			}
		})
	}
}

// selfSignedClientCert is a self-signed ECDSA client certificate.
func selfSignedClientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestDPoPInsufficientScopeChallenge: a DPoP-bound token that lacks the
// required scope gets 403 with the DPoP challenge (RFC 9449 §7.1), which
// names the scope needed like the Bearer one (RFC 6750 §3.1).
func TestDPoPInsufficientScopeChallenge(t *testing.T) {
	h, srv := dpopHarness(t, nil)
	k := allKeys(t)
	path := "/orders/42"
	var tok string
	proofs := joseProofs(t, map[string]any{"htm": "GET", "htu": srv.URL + path, "now": base.Unix()}, func(jkt string) string {
		tok = k.ec.Sign(t, with(with(claims(issA), "cnf", map[string]any{"jkt": jkt}), "scope", "write"))
		return tok
	})
	resp := send(t, "GET", srv.URL+path, "DPoP "+tok, proofs["valid"])
	want := `DPoP realm="jwt-sidecar", algs="` + strings.Join(h.proxy.dpopAlgs, " ") +
		`", error="insufficient_scope", error_description="the token lacks a required scope or claim", scope="read"`
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != want {
		t.Errorf("challenge %q\nwant      %q", got, want)
	}
	if n := len(h.upstream.requests()); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}
