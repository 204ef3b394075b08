package main

import (
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
	"github.com/jwt-sidecar/jwt-sidecar/revocation"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
)

// explainWants runs explain with args and checks its exit code and that
// its output has every line fragment of want.
func explainWants(t *testing.T, env []string, wantCode int, want []string, args ...string) string {
	t.Helper()
	code, out, errOut := runBinary(t, env, "", append([]string{"explain"}, args...)...)
	if code != wantCode {
		t.Errorf("explain %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("explain %v: output lacks %q:\n%s", args, w, out)
		}
	}
	return out
}

// TestExplainDPoPAndRevocation: explain, run as the real binary against
// the real dev issuer, says a DPoP-bound token is bound and what the
// request must carry; checks a --dpop proof claim by claim, in agreement
// with the proxy's verdict; and names the revocation entry (by jti, by
// subject, from the URL and from a file) that revokes a token.
func TestExplainDPoPAndRevocation(t *testing.T) {
	is := startIssuerBinary(t, devIssuerBinary(t), nil)
	revFile := filepath.Join(t.TempDir(), "revocations.json")
	writeList := func(doc revocation.Document) {
		b, _ := json.Marshal(doc)
		if err := os.WriteFile(revFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeList(revocation.Document{Version: revocation.Version})
	env := []string{
		"UPSTREAM_URL=http://127.0.0.1:9", "ISSUERS=" + is.base, "AUDIENCES=demo-api",
		"JWKS_URLS=" + is.base + "/.well-known/jwks.json",
		"REVOCATION_LIST_URL=" + is.base + "/revocations", "REVOCATION_FILE=" + revFile,
	}
	alice := dpopClient(t)
	_, body := dpopToken(t, is.base, alice)
	tok, _ := body["access_token"].(string)
	const uri = "http://api.example/orders"
	proof := func(c *dpop.Client, method, uri string) string {
		p, err := c.Proof(method, uri, tok, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	listURL := is.base + "/revocations"

	// Without a proof: what the request must carry; as Bearer it is refused.
	explainWants(t, env, 1, []string{
		"DPoP-bound (RFC 9449): cnf.jkt " + alice.JKT(),
		"Authorization: DPoP <token>",
		"  htm GET",
		"  htu " + uri + " (",
		"  ath " + dpop.TokenHash(tok),
		"no --dpop PROOF given",
		listURL + ": loaded, 0 token and 0 subject entries",
		"file:" + revFile + ": loaded",
		"not revoked: no entry for jti",
		"reason dpop_bound_as_bearer",
	}, "--host", "api.example", "--path", "/orders", tok)
	explainWants(t, env, 1, []string{"(scheme DPoP)", "reason dpop_missing"}, "--host", "api.example", "--path", "/orders", "DPoP "+tok)

	// A good proof: every check ok, and the proxy's verdict agrees.
	explainWants(t, env, 0, []string{
		"(scheme DPoP)", "ok    key thumbprint " + alice.JKT(), "ok    htm GET", "ok    htu " + uri, "ok    ath", "ok    iat", "ALLOWED",
	}, "--host", "api.example", "--path", "/orders", "--dpop", proof(alice, http.MethodGet, uri), tok)
	// Another key, method and URL: each named, and the proxy refuses.
	mallory := dpopClient(t)
	out := explainWants(t, env, 1, []string{
		"WRONG key thumbprint " + mallory.JKT(), "WRONG htm POST", "WRONG htu http://elsewhere/orders", "reason dpop_mismatch",
	}, "--host", "api.example", "--path", "/orders", "--dpop", proof(mallory, http.MethodPost, "http://elsewhere/orders"), tok)
	if strings.Contains(out, "ALLOWED") {
		t.Error("a mismatching proof explained as allowed")
	}
	explainWants(t, env, 1, []string{"--dpop: not a valid proof", "reason dpop_invalid"}, "--dpop", "not.a.proof", tok)

	// Revoked by jti at the issuer: the entry from the URL is named.
	is.post(t, "/revoke", url.Values{"token": {tok}})
	jti, _ := claimsOf(tok)["jti"].(string)
	explainWants(t, env, 1, []string{
		listURL + ": loaded, 1 token and 0 subject entries",
		"REVOKED by " + listURL + ": the entry for jti " + jti + " of " + is.base,
		"reason revoked",
	}, "--host", "api.example", "--path", "/orders", "--dpop", proof(alice, http.MethodGet, uri), tok)

	// Revoked by subject in the file: a Bearer token of subject demo.
	bearer := is.token(t)
	explainWants(t, env, 0, []string{"none: a bearer token (no cnf claim)", "not revoked", "ALLOWED"}, bearer)
	iat := numericDate(claimsOf(bearer)["iat"])
	before := iat.Add(time.Second)
	writeList(revocation.Document{Version: revocation.Version, Subjects: []revocation.SubjectEntry{{
		Issuer: is.base, Subject: "demo", IssuedBefore: revocation.NewNumericDate(before), Expiry: revocation.NewNumericDate(before.Add(time.Hour)),
	}}})
	explainWants(t, env, 1, []string{
		fmt.Sprintf("REVOKED by file:%s: every token of subject demo of %s issued before %s (its iat is %s)", revFile, is.base, before.Format(time.RFC3339), iat.Format(time.RFC3339)),
		"reason revoked",
	}, bearer)

	// Without any list configured, explain says so.
	explainWants(t, env[:4], 0, []string{"revocation list\n  none configured", "ALLOWED"}, is.token(t))
}

// TestExplainCertificateBound: a cnf x5t#S256 token is explained as
// certificate-bound; --cert presents a client certificate, matching or
// not, and the proxy's verdict follows.
func TestExplainCertificateBound(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	mine, _ := ca.Client(t, pkix.Name{CommonName: "billing"}).Write(t, dir)
	otherDir := t.TempDir()
	theirs, _ := ca.Client(t, pkix.Name{CommonName: "other"}).Write(t, otherDir)
	cert, err := readCertificate(mine)
	if err != nil {
		t.Fatal(err)
	}
	tok := k.Sign(t, jwt.MapClaims{
		"iss": testIssuer, "sub": "billing", "aud": "api", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		"cnf": map[string]any{"x5t#S256": dpop.CertThumbprint(cert)},
	})
	env := []string{"UPSTREAM_URL=http://127.0.0.1:9", "ISSUERS=" + testIssuer, "AUDIENCES=api", "JWKS_URLS=" + is.URL}
	explainWants(t, env, 1, []string{"certificate-bound (RFC 8705): cnf.x5t#S256 " + dpop.CertThumbprint(cert), "no --cert given", "reason mtls_missing"}, tok)
	explainWants(t, env, 0, []string{"over TLS, presenting the client certificate CN=billing", "matches", "ALLOWED"}, "--cert", mine, tok)
	explainWants(t, env, 1, []string{"does NOT match (mtls_mismatch)", "reason mtls_mismatch"}, "--cert", theirs, tok)
	if code, _, errOut := runBinary(t, env, "", "explain", "--cert", filepath.Join(dir, "absent.pem"), tok); code != 2 || !strings.Contains(errOut, "--cert") {
		t.Errorf("a missing --cert file: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runBinary(t, env, "", "explain", "--lookup", "cookie:session", "--dpop", "x", tok); code != 2 || !strings.Contains(errOut, "only in the Authorization header") {
		t.Errorf("DPoP in a cookie: exit %d, %q", code, errOut)
	}
}
