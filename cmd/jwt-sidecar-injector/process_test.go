package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/test/promtest"
)

// These tests run the real binary as a process: real listeners, real
// signals, real exit codes.

var binary string

func TestMain(m *testing.M) {
	b, cleanup, err := proctest.Build(".", "jwt-sidecar-injector")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = b
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// writeCertificate writes a CA-signed certificate for 127.0.0.1 and its key
// to dir and returns the CA pool that verifies it.
func writeCertificate(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "jwt-sidecar-injector"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"tls.crt": {Type: "CERTIFICATE", Bytes: der},
		"tls.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// process is one running jwt-sidecar-injector.
type process struct {
	*proctest.Process
	listen string
	admin  string
}

func start(t *testing.T, certDir string, env map[string]string) *process {
	t.Helper()
	p := &process{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	vars := []string{
		"LISTEN_ADDR=" + p.listen, "ADMIN_ADDR=" + p.admin,
		"TLS_CERT_FILE=" + filepath.Join(certDir, "tls.crt"), "TLS_KEY_FILE=" + filepath.Join(certDir, "tls.key"),
		"SIDECAR_IMAGE=ghcr.io/jwt-sidecar/jwt-sidecar:v0.1.0",
		"DEFAULT_ISSUERS=https://issuer.example", "DEFAULT_JWKS_URLS=https://issuer.example/jwks.json",
	}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	p.Process = proctest.Start(t, binary, vars)
	p.waitFor(t, "/healthz", http.StatusOK)
	return p
}

// waitFor polls an admin path until it answers want, with a deadline.
func (p *process) waitFor(t *testing.T, path string, want int) {
	t.Helper()
	p.WaitFor(t, "http://"+p.admin+path, want)
}

func TestConfigErrorExitsTwo(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{name: "nothing set", want: []string{"TLS_CERT_FILE: required but not set", "TLS_KEY_FILE: required but not set", "SIDECAR_IMAGE: required but not set"}},
		{name: "bad values", env: []string{
			"TLS_CERT_FILE=/c", "TLS_KEY_FILE=/k", "SIDECAR_IMAGE=img", "DEFAULT_UPSTREAM_PORT=7071", "DEFAULT_TOKEN_LOOKUP=body:x", "SIDECAR_MEMORY_REQUEST=1Gi",
		}, want: []string{"DEFAULT_UPSTREAM_PORT:", "DEFAULT_TOKEN_LOOKUP:", "SIDECAR_MEMORY_REQUEST:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Env = tt.env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("err = %v, want exit code 2", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func TestServeThenSIGTERM(t *testing.T) {
	dir := t.TempDir()
	pool := writeCertificate(t, dir)
	p := start(t, dir, nil)
	p.waitFor(t, "/readyz", http.StatusOK)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	for _, tt := range []struct {
		fixture     string
		wantAllowed bool
		wantPatch   bool
	}{
		{fixture: "native", wantAllowed: true, wantPatch: true},
		{fixture: "malformed-token-lookup-source", wantAllowed: false},
		{fixture: "kube-system", wantAllowed: true},
	} {
		body, err := os.ReadFile(filepath.Join("..", "..", "injector", "testdata", tt.fixture+".json"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Post("https://"+p.listen+"/mutate", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != http.StatusOK || out.Response == nil {
			t.Fatalf("%s: status %d, %v: %s", tt.fixture, resp.StatusCode, err, raw)
		}
		if out.Response.Allowed != tt.wantAllowed || (out.Response.Patch != nil) != tt.wantPatch {
			t.Errorf("%s: allowed %v, patch %d bytes; want %v, %v", tt.fixture, out.Response.Allowed, len(out.Response.Patch), tt.wantAllowed, tt.wantPatch)
		}
	}

	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`jwt_sidecar_injector_injections_total{namespace="shop"} 1`,
		`jwt_sidecar_injector_failures_total{namespace="shop",reason="malformed_annotation"} 1`,
		`jwt_sidecar_injector_request_duration_seconds_count{outcome="skipped"} 1`,
		`jwt_sidecar_injector_certificate_reloads_total{result="ok"} 1`,
		`jwt_sidecar_injector_build_info{version=`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Every histogram's bounds are exact decimals (le="0.001").
	promtest.CheckBucketBounds(t, string(metrics), "jwt_sidecar_injector_request_duration_seconds")
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}
	for _, want := range []string{`"msg":"sidecar injected"`, `"msg":"pod refused"`, `"msg":"pod left alone"`} {
		if !strings.Contains(p.Logs(), want) {
			t.Errorf("logs lack %s", want)
		}
	}

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if !strings.Contains(p.Logs(), "jwt-sidecar-injector stopped") {
		t.Error("no shutdown log line")
	}
}

// TestReadyOnceCertificateAppears starts without certificate files (a
// Secret not yet written): alive, not ready; ready once the files exist.
func TestReadyOnceCertificateAppears(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, nil)
	p.waitFor(t, "/readyz", http.StatusServiceUnavailable)
	writeCertificate(t, dir)
	p.waitFor(t, "/readyz", http.StatusOK)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}
