package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
)

// cluster is a Kubernetes-shaped service-account issuer: its URL is the
// issuer (https://127.0.0.1:PORT, standing in for
// https://kubernetes.default.svc), its CA file is the pod's ca.crt, its
// token file the pod's projected token, which the issuer demands.
type cluster struct {
	*tlstest.Issuer
	signer          jwttest.Signer
	caFile, tokFile string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "kubernetes")
	c := &cluster{signer: jwttest.NewSigner(t, "RS256", "sa-key-1"), caFile: filepath.Join(dir, "ca.crt"), tokFile: filepath.Join(dir, "token")}
	c.Issuer = tlstest.NewIssuer(t, ca, "projected-1", jwttest.JWKS(t, c.signer))
	tlstest.WriteFile(t, c.caFile, ca.PEM)
	tlstest.WriteFile(t, c.tokFile, []byte("projected-1\n"))
	return c
}

// serviceAccountToken signs claims shaped like a projected service-account
// token of shop/billing for audience aud.
func (c *cluster) serviceAccountToken(t *testing.T, s jwttest.Signer, aud string) string {
	t.Helper()
	now := time.Now()
	return s.Sign(t, jwt.MapClaims{
		"iss": c.URL, "aud": []string{aud}, "sub": "system:serviceaccount:shop:billing",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "f3c1",
		"kubernetes.io": map[string]any{
			"namespace":      "shop",
			"serviceaccount": map[string]any{"name": "billing", "uid": "0b7d5b3e-3c1a-4d2e-9d1e-6a0c2f6e9b11"},
			"pod":            map[string]any{"name": "billing-7d9f", "uid": "5e0c1a2b-8f3d-4c6e-a1b2-c3d4e5f60718"},
		},
	})
}

const k8sHeaders = "sub=X-Auth-Subject,kubernetes.io.namespace=X-K8s-Namespace,kubernetes.io.serviceaccount.name=X-K8s-Service-Account"

// TestKubernetesServiceAccountIssuer verifies service-account tokens by
// discovering a cluster-shaped issuer over TLS under its private CA with
// the pod's rotating token: allowed end to end with the claims as headers,
// refusals never reach the upstream, a rotated token file is what the next
// fetch sends, and without the CA file nothing loads and the log says why.
func TestKubernetesServiceAccountIssuer(t *testing.T) {
	c := newCluster(t)
	up := newHeaderRecorder(t)
	env := map[string]string{
		"UPSTREAM_URL": up.URL, "OIDC_ISSUER_URL": c.URL, "ISSUERS": c.URL, "AUDIENCES": "api",
		"JWKS_CA_FILE": c.caFile, "JWKS_BEARER_TOKEN_FILE": c.tokFile, "CLAIMS_TO_HEADERS": k8sHeaders,
	}
	s := startSidecar(t, env)
	s.waitFor(t, "/readyz", http.StatusOK)

	resp := s.get(t, "/orders", c.serviceAccountToken(t, c.signer, "api"))
	if resp.StatusCode != http.StatusOK || up.count() != 1 {
		t.Fatalf("service-account token: %d, upstream saw %d; want 200 and 1", resp.StatusCode, up.count())
	}
	h := up.last()
	if h.Get("X-K8s-Namespace") != "shop" || h.Get("X-K8s-Service-Account") != "billing" || h.Get("X-Auth-Subject") != "system:serviceaccount:shop:billing" {
		t.Errorf("upstream headers %v, want namespace shop, service account billing, subject system:serviceaccount:shop:billing", h)
	}
	for _, tt := range []struct{ name, token string }{
		{"no token", ""},
		{"another audience", c.serviceAccountToken(t, c.signer, "vault")},
		{"another key", c.serviceAccountToken(t, jwttest.NewSigner(t, "RS256", "sa-key-1"), "api")},
	} {
		if resp := s.get(t, "/orders", tt.token); resp.StatusCode != http.StatusUnauthorized || up.count() != 1 {
			t.Errorf("%s: %d, upstream saw %d; want 401 and still 1", tt.name, resp.StatusCode, up.count())
		}
	}
	if strings.Contains(s.Logs(), "projected-1") {
		t.Error("the bearer token appears in the log")
	}

	// The kubelet rotates the projected token; the cluster rotates its
	// signing key. A token of the new key makes the sidecar refetch, with
	// the new token.
	tlstest.WriteFile(t, c.tokFile, []byte("projected-2\n"))
	c.SetToken("projected-2")
	next := jwttest.NewSigner(t, "RS256", "sa-key-2")
	c.SetJWKS(jwttest.JWKS(t, c.signer, next))
	denied := c.Denied()
	if resp := s.get(t, "/orders", c.serviceAccountToken(t, next, "api")); resp.StatusCode != http.StatusOK {
		t.Errorf("token of the rotated key: %d, want 200 (issuer refused %d fetches)", resp.StatusCode, c.Denied()-denied)
	}
	if c.Denied() != denied {
		t.Errorf("the issuer refused %d fetches after the token rotation", c.Denied()-denied)
	}

	// Without the CA file: not ready, and the log names the cause.
	delete(env, "JWKS_CA_FILE")
	bare := startSidecar(t, env)
	bare.waitFor(t, "/readyz", http.StatusServiceUnavailable)
	waitLogs(t, bare, "untrusted_certificate")

	// check-config shows the files, never the token.
	var vars []string
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	vars = append(vars, "JWKS_CA_FILE="+c.caFile, "ISSUERS="+c.URL)
	code, out, errOut := runBinary(t, vars, "", "check-config")
	if code != 0 || !strings.Contains(out, "ca_file: "+c.caFile) || !strings.Contains(out, "bearer_token_file: "+c.tokFile) || strings.Contains(out, "projected-") {
		t.Errorf("check-config: exit %d\n%s%s", code, out, errOut)
	}
}

// TestKubernetesIssuerFromConfigFile is the same issuer as a CONFIG_FILE
// provider's key source, with ca_file and bearer_token_file.
func TestKubernetesIssuerFromConfigFile(t *testing.T) {
	c := newCluster(t)
	up := newHeaderRecorder(t)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, file, fmt.Sprintf(`providers:
  - name: cluster
    oidc_issuer_url: %s
    ca_file: %s
    bearer_token_file: %s
    audiences: [api]
    claims_to_headers:
      kubernetes.io.namespace: X-K8s-Namespace
      kubernetes.io.serviceaccount.name: X-K8s-Service-Account
rules:
  - name: billing-only
    match: {prefix: /}
    require: cluster
    claims: {kubernetes.io.serviceaccount.name: billing}
`, c.URL, c.caFile, c.tokFile))
	s := startSidecarEnv(t, []string{"UPSTREAM_URL=" + up.URL, "CONFIG_FILE=" + file})
	s.waitFor(t, "/readyz", http.StatusOK)
	if resp := s.get(t, "/orders", c.serviceAccountToken(t, c.signer, "api")); resp.StatusCode != http.StatusOK || up.count() != 1 {
		t.Fatalf("service-account token: %d, upstream saw %d", resp.StatusCode, up.count())
	}
	if up.last().Get("X-K8s-Namespace") != "shop" {
		t.Errorf("upstream headers %v", up.last())
	}
	if resp := s.get(t, "/orders", ""); resp.StatusCode != http.StatusUnauthorized || up.count() != 1 {
		t.Errorf("no token: %d, upstream saw %d", resp.StatusCode, up.count())
	}
}

// TestClientCARotation rotates TLS_CLIENT_CA_FILE on a running listener:
// after the rotation a client certificate of the old CA is refused (a
// resumed session too), and one of the new CA is accepted, without a
// restart.
func TestClientCARotation(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, seen := headerEcho(t)
	serverCA, oldCA, newCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "old client CA"), tlstest.NewCA(t, "new client CA")
	dir := t.TempDir()
	certFile, keyFile := serverCA.Server(t, "sidecar").Write(t, dir)
	caFile := filepath.Join(dir, "clients.pem")
	tlstest.WriteFile(t, caFile, oldCA.PEM)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "CLAIMS_TO_HEADERS": "sub=X-Auth-Subject",
		"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile, "TLS_CLIENT_CA_FILE": caFile,
	})
	s.waitFor(t, "/readyz", http.StatusOK)
	base := "https://" + s.listen + "/x"
	client := func(p tlstest.Pair) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
			RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{p.TLS}, ClientSessionCache: tls.NewLRUClientSessionCache(8),
		}}}
	}
	oldClient := client(oldCA.Client(t, pkix.Name{CommonName: "billing"}))
	newClient := client(newCA.Client(t, pkix.Name{CommonName: "billing"}))
	call := func(c *http.Client) int {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		req.Header.Set("Authorization", "Bearer "+token(t, k))
		resp, err := c.Do(req)
		if err != nil {
			return 0 // a refused handshake
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Twice, so the second connection may resume the first's session.
	if a, b := call(oldClient), call(oldClient); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("old CA before the rotation: %d, %d; want 200", a, b)
	}
	if got := call(newClient); got != 0 {
		t.Fatalf("new CA before the rotation: %d, want a refused handshake", got)
	}

	tlstest.WriteFile(t, caFile, newCA.PEM)
	deadline := time.Now().Add(15 * time.Second)
	for call(newClient) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("a certificate of the new CA is still refused 15s after the rotation")
		}
		time.Sleep(100 * time.Millisecond) // polling interval, bounded by the deadline
	}
	before := seen.Load()
	for i := range 3 {
		if got := call(oldClient); got != 0 {
			t.Fatalf("old CA after the rotation, try %d: %d, want a refused handshake", i, got)
		}
	}
	if seen.Load() != before {
		t.Error("a request with a certificate of the removed CA reached the upstream")
	}
}

// startSidecarEnv starts the sidecar with exactly env and its listeners.
func startSidecarEnv(t *testing.T, env []string) *sidecar {
	t.Helper()
	s := &sidecar{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	s.Process = proctest.Start(t, binary, append(env, "LISTEN_ADDR="+s.listen, "ADMIN_ADDR="+s.admin))
	s.waitFor(t, "/healthz", http.StatusOK)
	return s
}

// waitLogs polls the process's log until it holds want, with a deadline.
func waitLogs(t *testing.T, s *sidecar, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within 10s:\n%s", want, s.Logs())
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
}
