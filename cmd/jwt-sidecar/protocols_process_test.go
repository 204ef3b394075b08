package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
)

// headerEcho is an upstream that answers with the headers the sidecar
// sets, and counts what reached it.
func headerEcho(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprintf(w, "sub=%s cert=%s sha=%s", r.Header.Get("X-Auth-Subject"),
			r.Header.Get("X-Client-Cert-Subject"), r.Header.Get("X-Client-Cert-Sha256"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func do(t *testing.T, c *http.Client, url, token string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestH2CPriorKnowledge calls the plain listener with a real HTTP/2 client
// that speaks only h2c: the answer comes over HTTP/2, and refusals too.
func TestH2CPriorKnowledge(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, seen := headerEcho(t)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "CLAIMS_TO_HEADERS": "sub=X-Auth-Subject"})
	s.waitFor(t, "/readyz", http.StatusOK)

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
	resp, _ := do(t, c, "http://"+s.listen+"/x", "", nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.ProtoMajor != 2 || seen.Load() != 0 {
		t.Fatalf("no token over h2c: %d %s, upstream saw %d", resp.StatusCode, resp.Proto, seen.Load())
	}
	resp, body := do(t, c, "http://"+s.listen+"/x", token(t, k), nil)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || !strings.HasPrefix(body, "sub=alice ") {
		t.Fatalf("valid token over h2c: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	// HTTP/1.1 still works on the same listener.
	if resp := s.get(t, "/x", token(t, k)); resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1: %d %s", resp.StatusCode, resp.Proto)
	}
}

// TestTLSListener terminates TLS with a private CA's certificate, HTTP/2 by
// ALPN, requires a verified client certificate whose subject and
// thumbprint reach the upstream (a forged one never does), and picks up a
// rotated certificate without a restart.
func TestTLSListener(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, seen := headerEcho(t)
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "first").Write(t, dir)
	caFile := filepath.Join(dir, "ca.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	client := ca.Client(t, pkix.Name{CommonName: "billing", Organization: []string{"acme"}})
	clientCert, clientKey := client.Write(t, t.TempDir())

	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "CLAIMS_TO_HEADERS": "sub=X-Auth-Subject",
		"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile, "TLS_CLIENT_CA_FILE": caFile,
	})
	s.waitFor(t, "/readyz", http.StatusOK)
	base := "https://" + s.listen + "/x"

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}}, ForceAttemptHTTP2: true, DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, body := do(t, c, base, token(t, k), map[string]string{"X-Client-Cert-Subject": "CN=forged", "X_Client_Cert_Sha256": "forged"})
	leaf := client.TLS.Leaf
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("mutual TLS: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	if want := "sub=alice cert=" + leaf.Subject.String() + " sha="; !strings.HasPrefix(body, want) || strings.Contains(body, "forged") || len(body) != len(want)+43 {
		t.Errorf("upstream saw %q, want %q and a 43-character thumbprint", body, want)
	}
	resp, _ = do(t, c, base, "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token over mutual TLS: %d, want 401", resp.StatusCode)
	}

	// Without a client certificate the handshake fails: nothing arrives.
	before := seen.Load()
	bare := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}, Timeout: 10 * time.Second}
	if req, _ := http.NewRequest(http.MethodGet, base, nil); true {
		req.Header.Set("Authorization", "Bearer "+token(t, k))
		if resp, err := bare.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("without a client certificate: %d, want a failed handshake", resp.StatusCode)
		}
	}
	if seen.Load() != before {
		t.Error("a request without a client certificate reached the upstream")
	}

	t.Run("curl over HTTP/2", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("curl is required under CI=true (apt-get install curl)")
			}
			t.Skip("curl not installed; skipping the curl check")
		}
		out, err := exec.Command(curl, "-sS", "--http2", "--cacert", caFile, "--cert", clientCert, "--key", clientKey,
			"-H", "Authorization: Bearer "+token(t, k), "-w", "\n%{http_version} %{http_code}", base).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		if !strings.HasSuffix(string(out), "\n2 200") || !strings.HasPrefix(string(out), "sub=alice cert=") {
			t.Errorf("curl got %q, want HTTP/2 200 with the claims", out)
		}
	})

	// Rotation: new files, same paths, no restart; new connections get the
	// new certificate within a few check intervals.
	ca.Server(t, "second").Write(t, dir)
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := tls.Dial("tcp", s.listen, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}})
		if err != nil {
			t.Fatal(err)
		}
		cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
		conn.Close()
		if cn == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving %q 15s after the rotation", cn)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, bounded by the deadline
	}
}
