package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// These tests run DPoP (RFC 9449) and mTLS-bound (RFC 8705) tokens end to
// end with the real binaries: jwt-issuer issues a DPoP-bound token to a
// client that sent a proof to /token, and jwt-sidecar checks a fresh proof
// on every request. The client is dpop.Client with a real ES256 key.

// claimsUpstream counts the requests it receives and answers with the
// headers the sidecar set.
func claimsUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprintf(w, "sub=%s client=%s authorization=%q", r.Header.Get("X-Auth-Subject"), r.Header.Get("X-Auth-Client"), r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

var (
	issuerBinOnce sync.Once
	issuerBin     string
	issuerBinErr  error
)

// devIssuerBinary builds cmd/jwt-issuer once for this test binary.
func devIssuerBinary(t *testing.T) string {
	t.Helper()
	issuerBinOnce.Do(func() {
		// The folder lives as long as the test binary; TestMain's cleanup
		// does not know it, so it goes to the OS's temp dir reaper.
		issuerBin, _, issuerBinErr = proctest.Build("../jwt-issuer", "jwt-issuer")
	})
	if issuerBinErr != nil {
		t.Fatal(issuerBinErr)
	}
	return issuerBin
}

// dpopClient is a client with its own ES256 key.
func dpopClient(t *testing.T) *dpop.Client {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dpop.NewClient(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dpopToken asks the issuer at base for a client_credentials token with a
// proof of c (RFC 9449 §5) and returns the token response.
func dpopToken(t *testing.T, base string, c *dpop.Client) (status int, body map[string]any) {
	t.Helper()
	proof, err := c.Proof(http.MethodPost, base+"/token", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tokenRequest(t, base, proof)
}

func tokenRequest(t *testing.T, base string, proofs ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo", "demo-secret")
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

// call sends one request through the sidecar with c (a client of its
// own, for TLS) and returns the answer and its body.
func call(t *testing.T, c *http.Client, method, target, auth string, proofs ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// refusedAsDPoP checks a DPoP refusal: 401, the DPoP challenge (RFC 9449
// §7.1) with the accepted algs, the error code and the reason's
// description.
func refusedAsDPoP(t *testing.T, resp *http.Response, reason verifier.Reason) {
	t.Helper()
	ch := resp.Header.Get("WWW-Authenticate")
	want := fmt.Sprintf(`error="%s", error_description="%s"`, dpop.Reason(reason).Code(), reason.Description())
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `algs="ES256 `) || !strings.Contains(ch, want) {
		t.Errorf("status %d, WWW-Authenticate %q; want 401 and a DPoP challenge with %s (%s)", resp.StatusCode, ch, want, reason)
	}
}

// TestDPoPEndToEnd: a client gets a DPoP-bound token from the real dev
// issuer with a proof, and calls through the real sidecar with a fresh
// proof per request. Each refusal names its reason and never reaches the
// upstream.
func TestDPoPEndToEnd(t *testing.T) {
	is := startIssuerBinary(t, devIssuerBinary(t), nil)
	up, seen := claimsUpstream(t)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL, "ISSUERS": is.base, "AUDIENCES": "demo-api",
		"JWKS_URLS":                   is.base + "/.well-known/jwks.json",
		"CLAIMS_TO_HEADERS":           "sub=X-Auth-Subject,client_id=X-Auth-Client",
		"REVOCATION_LIST_URL":         is.base + "/revocations",
		"REVOCATION_REFRESH_INTERVAL": revocationPoll.String(),
	})
	s.waitFor(t, "/readyz", http.StatusOK)

	alice := dpopClient(t)
	status, body := dpopToken(t, is.base, alice)
	tok, _ := body["access_token"].(string)
	if status != http.StatusOK || body["token_type"] != "DPoP" || tok == "" {
		t.Fatalf("/token with a proof = %d %v; want 200 and token_type DPoP", status, body)
	}
	if cnf, _ := claimsOf(tok)["cnf"].(map[string]any); cnf["jkt"] != alice.JKT() {
		t.Fatalf("cnf = %v, want jkt %s (the client's key)", cnf, alice.JKT())
	}

	// The issuer's side of RFC 9449 §5: a bad proof is 400
	// invalid_dpop_proof, and a proof is spent once.
	wrongHTU, _ := alice.Proof(http.MethodPost, is.base+"/elsewhere", "", "")
	if status, body := tokenRequest(t, is.base, wrongHTU); status != http.StatusBadRequest || body["error"] != dpop.CodeInvalidProof {
		t.Errorf("/token with a proof for another URL = %d %v, want 400 invalid_dpop_proof", status, body)
	}
	once, _ := alice.Proof(http.MethodPost, is.base+"/token", "", "")
	if status, _ := tokenRequest(t, is.base, once); status != http.StatusOK {
		t.Errorf("/token with a fresh proof = %d", status)
	}
	if status, body := tokenRequest(t, is.base, once); status != http.StatusBadRequest || body["error"] != dpop.CodeInvalidProof {
		t.Errorf("/token with a replayed proof = %d %v, want 400 invalid_dpop_proof", status, body)
	}

	target := "http://" + s.listen + "/orders/42?expand=items"
	proof := func(c *dpop.Client, method, uri, token string) string {
		t.Helper()
		p, err := c.Proof(method, uri, token, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	hc := &http.Client{Timeout: 10 * time.Second}

	// Allowed: DPoP scheme, a fresh proof each time.
	for range 2 {
		resp, body := call(t, hc, http.MethodGet, target, "DPoP "+tok, proof(alice, http.MethodGet, target, tok))
		if resp.StatusCode != http.StatusOK || body != `sub=demo client=demo authorization=""` {
			t.Fatalf("a DPoP request = %d %q; want 200, the claim headers and no Authorization upstream", resp.StatusCode, body)
		}
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("the upstream saw %d requests, want 2", n)
	}

	replayed := proof(alice, http.MethodGet, target, tok)
	if resp, _ := call(t, hc, http.MethodGet, target, "DPoP "+tok, replayed); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use of a proof = %d", resp.StatusCode)
	}
	mallory := dpopClient(t)
	otherStatus, otherBody := dpopToken(t, is.base, mallory)
	otherTok, _ := otherBody["access_token"].(string)
	if otherStatus != http.StatusOK {
		t.Fatalf("a second client's token = %d", otherStatus)
	}
	noATH := proof(alice, http.MethodGet, target, "")
	stale, _ := func() (string, error) {
		old := *alice
		old.Now = func() time.Time { return time.Now().Add(-5 * time.Minute) }
		return old.Proof(http.MethodGet, target, tok, "")
	}()
	before := seen.Load()
	tests := []struct {
		name   string
		method string
		auth   string
		proofs []string
		reason verifier.Reason
	}{
		{name: "the bound token as Bearer", auth: "Bearer " + tok, proofs: []string{proof(alice, http.MethodGet, target, tok)}, reason: verifier.DPoPBoundAsBearer},
		{name: "the bound token as Bearer, no proof", auth: "Bearer " + tok, reason: verifier.DPoPBoundAsBearer},
		{name: "no proof", auth: "DPoP " + tok, reason: verifier.DPoPMissing},
		{name: "a replayed proof", auth: "DPoP " + tok, proofs: []string{replayed}, reason: verifier.DPoPReplayed},
		{name: "wrong htm", method: http.MethodPost, auth: "DPoP " + tok, proofs: []string{proof(alice, http.MethodGet, target, tok)}, reason: verifier.DPoPMismatch},
		{name: "wrong htu (path)", auth: "DPoP " + tok, proofs: []string{proof(alice, http.MethodGet, "http://"+s.listen+"/orders/43", tok)}, reason: verifier.DPoPMismatch},
		{name: "wrong htu (host)", auth: "DPoP " + tok, proofs: []string{proof(alice, http.MethodGet, "http://api.example/orders/42", tok)}, reason: verifier.DPoPMismatch},
		{name: "signed by another key", auth: "DPoP " + tok, proofs: []string{proof(mallory, http.MethodGet, target, tok)}, reason: verifier.DPoPMismatch},
		{name: "another key with its own token's ath", auth: "DPoP " + tok, proofs: []string{proof(mallory, http.MethodGet, target, otherTok)}, reason: verifier.DPoPMismatch},
		{name: "missing ath", auth: "DPoP " + tok, proofs: []string{noATH}, reason: verifier.DPoPInvalid},
		{name: "stale iat", auth: "DPoP " + tok, proofs: []string{stale}, reason: verifier.DPoPInvalid},
		{name: "two proofs", auth: "DPoP " + tok, proofs: []string{proof(alice, http.MethodGet, target, tok), proof(alice, http.MethodGet, target, tok)}, reason: verifier.DPoPInvalid},
		{name: "not a JWT", auth: "DPoP " + tok, proofs: []string{"not-a-proof"}, reason: verifier.DPoPInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			resp, _ := call(t, hc, method, target, tt.auth, tt.proofs...)
			refusedAsDPoP(t, resp, tt.reason)
		})
	}
	if n := seen.Load() - before; n != 0 {
		t.Errorf("the upstream saw %d refused requests", n)
	}
	// A proof refused for its method was not spent: the client can still
	// use it for the request it was made for (the jti is spent last).
	good := proof(alice, http.MethodGet, target, tok)
	if resp, _ := call(t, hc, http.MethodPost, target, "DPoP "+tok, good); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong method = %d", resp.StatusCode)
	}
	if resp, _ := call(t, hc, http.MethodGet, target, "DPoP "+tok, good); resp.StatusCode != http.StatusOK {
		t.Errorf("the proof after a refusal for another method = %d, want 200", resp.StatusCode)
	}
	// A Bearer token from the same issuer still passes as Bearer; with the
	// DPoP scheme it is refused (it is not bound).
	status, body = tokenRequest(t, is.base)
	bearerTok, _ := body["access_token"].(string)
	if status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("/token without a proof = %d %v", status, body)
	}
	if resp, _ := call(t, hc, http.MethodGet, target, "Bearer "+bearerTok); resp.StatusCode != http.StatusOK {
		t.Errorf("a Bearer token = %d", resp.StatusCode)
	}
	before = seen.Load()
	resp, _ := call(t, hc, http.MethodGet, target, "DPoP "+bearerTok, proof(alice, http.MethodGet, target, bearerTok))
	refusedAsDPoP(t, resp, verifier.DPoPMismatch)
	if seen.Load() != before {
		t.Error("an unbound token with the DPoP scheme reached the upstream")
	}
	waitSeries(t, s, `jwt_sidecar_requests_total{outcome="unauthenticated",reason="dpop_replayed"} 1`)

	// A proof does not save a revoked token: revoked at the issuer, it is
	// refused (revoked, the Bearer challenge's invalid_token) within a poll,
	// each request with a fresh, valid proof.
	is.post(t, "/revoke", url.Values{"token": {tok}})
	start := time.Now()
	for {
		before := seen.Load()
		resp, _ := call(t, hc, http.MethodGet, target, "DPoP "+tok, proof(alice, http.MethodGet, target, tok))
		if resp.StatusCode == http.StatusUnauthorized {
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, verifier.Revoked.Description()) {
				t.Errorf("a revoked DPoP token: %q, want reason revoked", ch)
			}
			if seen.Load() != before {
				t.Error("the revoked token's request reached the upstream")
			}
			break
		}
		if resp.StatusCode != http.StatusOK || time.Since(start) > 10*time.Second {
			t.Fatalf("a revoked DPoP token = %d after %s, want 401 revoked within a poll", resp.StatusCode, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond) // the test's own poll, not a wait for readiness
	}
	t.Logf("a revoked DPoP-bound token was refused %s after /revoke (poll %s)", time.Since(start).Round(time.Millisecond), revocationPoll)
}

// TestDPoPNonceEndToEnd: with DPOP_NONCE the first proof is answered 401
// use_dpop_nonce with a DPoP-Nonce header (RFC 9449 §8); the client puts
// the nonce in a new proof and passes. Neither refusal reaches the
// upstream.
func TestDPoPNonceEndToEnd(t *testing.T) {
	is := startIssuerBinary(t, devIssuerBinary(t), nil)
	up, seen := claimsUpstream(t)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL, "ISSUERS": is.base, "AUDIENCES": "demo-api",
		"JWKS_URLS":         is.base + "/.well-known/jwks.json",
		"CLAIMS_TO_HEADERS": "sub=X-Auth-Subject,client_id=X-Auth-Client",
		"DPOP_NONCE":        "true",
	})
	s.waitFor(t, "/readyz", http.StatusOK)
	c := dpopClient(t)
	_, body := dpopToken(t, is.base, c)
	tok, _ := body["access_token"].(string)
	target := "http://" + s.listen + "/orders"
	hc := &http.Client{Timeout: 10 * time.Second}

	p, _ := c.Proof(http.MethodGet, target, tok, "")
	resp, _ := call(t, hc, http.MethodGet, target, "DPoP "+tok, p)
	refusedAsDPoP(t, resp, verifier.DPoPNonce)
	nonce := resp.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce header on the use_dpop_nonce refusal")
	}
	p, _ = c.Proof(http.MethodGet, target, tok, "not-our-nonce")
	resp, _ = call(t, hc, http.MethodGet, target, "DPoP "+tok, p)
	refusedAsDPoP(t, resp, verifier.DPoPNonce)
	if seen.Load() != 0 {
		t.Fatalf("the upstream saw %d refused requests", seen.Load())
	}
	p, _ = c.Proof(http.MethodGet, target, tok, nonce)
	if resp, body := call(t, hc, http.MethodGet, target, "DPoP "+tok, p); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "sub=demo ") {
		t.Fatalf("the retry with the nonce = %d %q, want 200", resp.StatusCode, body)
	}
	if seen.Load() != 1 {
		t.Errorf("the upstream saw %d requests, want 1", seen.Load())
	}
}

// TestMTLSBoundEndToEnd: jwt-issuer's /token cannot issue certificate-bound
// tokens (it has no TLS listener to see a client certificate), so the
// token is minted with the same issuer's key by `jwt-issuer mint` and cnf
// x5t#S256 of a real client certificate; the sidecar, with client
// certificates on its TLS listener, passes it only over a connection that
// presents that certificate.
func TestMTLSBoundEndToEnd(t *testing.T) {
	bin := devIssuerBinary(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "issuer.key")
	if out, err := exec.Command(bin, "genkey", "-alg", "ES256", "-out", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("genkey: %v\n%s", err, out)
	}
	is := startIssuerBinary(t, bin, []string{"SIGNING_KEY_FILE=" + keyFile, "SIGNING_ALG=ES256"})

	ca := tlstest.NewCA(t, "test CA")
	certFile, certKey := ca.Server(t, "sidecar").Write(t, dir)
	caFile := filepath.Join(dir, "ca.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	mine := ca.Client(t, pkix.Name{CommonName: "billing"})
	theirs := ca.Client(t, pkix.Name{CommonName: "other"})

	mint := func(cnf string) string {
		t.Helper()
		out, err := exec.Command(bin, "mint", "-key", keyFile, "-iss", is.base, "-sub", "billing", "-claim", "cnf="+cnf).Output()
		if err != nil {
			t.Fatalf("mint: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	tok := mint(fmt.Sprintf(`{"x5t#S256":%q}`, dpop.CertThumbprint(mine.TLS.Leaf)))

	up, seen := claimsUpstream(t)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL, "ISSUERS": is.base, "AUDIENCES": "demo-api",
		"JWKS_URLS":         is.base + "/.well-known/jwks.json",
		"CLAIMS_TO_HEADERS": "sub=X-Auth-Subject",
		"TLS_CERT_FILE":     certFile, "TLS_KEY_FILE": certKey, "TLS_CLIENT_CA_FILE": caFile,
	})
	s.waitFor(t, "/readyz", http.StatusOK)
	client := func(cert tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}, DisableKeepAlives: true}}
	}
	target := "https://" + s.listen + "/ledger"
	if resp, body := call(t, client(mine.TLS), http.MethodGet, target, "Bearer "+tok); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "sub=billing ") {
		t.Fatalf("the bound certificate = %d %q, want 200", resp.StatusCode, body)
	}
	resp, _ := call(t, client(theirs.TLS), http.MethodGet, target, "Bearer "+tok)
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(ch, `error_description="`+verifier.MTLSMismatch.Description()+`"`) {
		t.Errorf("another client certificate = %d %q, want 401 %s", resp.StatusCode, ch, verifier.MTLSMismatch)
	}
	if seen.Load() != 1 {
		t.Errorf("the upstream saw %d requests, want the 1 allowed", seen.Load())
	}
	waitSeries(t, s, `jwt_sidecar_requests_total{outcome="unauthenticated",reason="mtls_mismatch"} 1`)
}

// startIssuerBinary runs jwt-issuer serve with extra environment.
func startIssuerBinary(t *testing.T, bin string, env []string) *devIssuer {
	t.Helper()
	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	p := proctest.Start(t, bin, append([]string{"LISTEN_ADDR=" + addr, "ISSUER_URL=" + base, "TOKEN_TTL=10m"}, env...))
	p.WaitFor(t, base+"/healthz", http.StatusOK)
	return &devIssuer{Process: p, base: base}
}
