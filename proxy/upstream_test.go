package proxy

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
)

// TestUnixSocketUpstream forwards an allowed request over HTTP/1.1 to an
// upstream listening on a unix socket, with the claims and the fixed Host,
// and never forwards a refused one.
func TestUnixSocketUpstream(t *testing.T) {
	k := allKeys(t)
	dir, err := os.MkdirTemp("", "jsu") // short: socket paths are limited to ~108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	up.Close() // its handler and records serve on the socket instead
	unixSrv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: up.Config.Handler}}
	unixSrv.Start()
	t.Cleanup(unixSrv.Close)

	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.Upstream = &url.URL{Scheme: SchemeUnix, Path: sock}
	})
	h.upstream = up
	if rec := h.serve(get("/api/items")); rec.Code != http.StatusUnauthorized || len(up.requests()) != 0 {
		t.Fatalf("no token: %d, upstream saw %d requests", rec.Code, len(up.requests()))
	}
	rec := h.serve(bearer("/api/items?x=1", k.rsa.Sign(t, claims(issA))))
	if rec.Code != http.StatusOK || rec.Body.String() != "upstream ok" {
		t.Fatalf("valid token: %d %q", rec.Code, rec.Body)
	}
	got := up.only(t)
	if got.Path != "/api/items" || got.RawQuery != "x=1" || got.Host != unixHost || got.Header.Get("X-Auth-Subject") != "alice" {
		t.Errorf("upstream saw %+v", got)
	}
}

// TestHTTPSUpstreamPrivateCA verifies an https upstream with a private CA
// and presents a client certificate to it (mutual TLS); without the CA the
// upstream is refused as unreachable, never trusted.
func TestHTTPSUpstreamPrivateCA(t *testing.T) {
	k := allKeys(t)
	ca := tlstest.NewCA(t, "upstream CA")
	server := ca.Server(t, "app")
	client := ca.Client(t, pkix.Name{CommonName: "jwt-sidecar"})
	var clientCN string
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		io.WriteString(w, "tls ok "+r.Header.Get("X-Auth-Subject"))
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	up.StartTLS()
	t.Cleanup(up.Close)

	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.Upstream = mustURL(t, up.URL)
		o.UpstreamTLS = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}, MinVersion: tls.VersionTLS12}
	})
	rec := h.serve(bearer("/api", k.rsa.Sign(t, claims(issA))))
	if rec.Code != http.StatusOK || rec.Body.String() != "tls ok alice" || clientCN != "jwt-sidecar" {
		t.Fatalf("got %d %q (client %q)", rec.Code, rec.Body, clientCN)
	}

	untrusted := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Upstream = mustURL(t, up.URL) })
	if rec := untrusted.serve(bearer("/api", k.rsa.Sign(t, claims(issA)))); rec.Code != http.StatusBadGateway {
		t.Fatalf("system roots: %d, want 502", rec.Code)
	}
}
