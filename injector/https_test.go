package injector

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
)

// webhook is the real handler served over TLS on 127.0.0.1 with a
// certificate from a CA made for the test.
type webhook struct {
	addr     string
	reg      *prometheus.Registry
	ca       *testCA
	certs    *CertReloader
	metrics  *Metrics
	client   *http.Client
	certFile string
	keyFile  string
}

func startWebhook(t *testing.T) *webhook {
	t.Helper()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.writePair(t, dir, 1)
	in, reg := newTestInjector(t, testDefaults())
	certs := NewCertReloader(certFile, keyFile, 20*time.Millisecond, in.metrics, discardLogger())
	if !certs.Ready() {
		t.Fatal("the certificate was not loaded at start")
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- certs.Run(ctx) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           in.Handler(discardLogger()),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate},
		ReadHeaderTimeout: 5 * time.Second,
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-serveDone; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("reloader: %v", err)
		}
	})
	w := &webhook{
		addr: ln.Addr().String(), reg: reg, ca: ca, certs: certs, metrics: in.metrics,
		certFile: certFile, keyFile: keyFile,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12},
		}},
	}
	t.Cleanup(w.client.CloseIdleConnections)
	return w
}

func (w *webhook) post(t *testing.T, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := w.client.Post("https://"+w.addr+"/mutate", contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// serial does a new TLS handshake and returns the serial number of the
// certificate the server presents, verified against the test CA.
func (w *webhook) serial(t *testing.T) *big.Int {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", w.addr, &tls.Config{RootCAs: w.ca.pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// eventually polls cond until it holds, with a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHTTPSAdmission(t *testing.T) {
	w := startWebhook(t)
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name        string
		fixture     string
		wantAllowed bool
		wantPatch   bool
	}{
		{name: "injected", fixture: "native", wantAllowed: true, wantPatch: true},
		{name: "refused", fixture: "malformed-port-text", wantAllowed: false},
		{name: "protected namespace", fixture: "kube-system", wantAllowed: true},
		{name: "not requested", fixture: "inject-True", wantAllowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := readReview(t, filepath.Join("testdata", tt.fixture+".json"))
			resp, body := w.post(t, "application/json; charset=utf-8", fixture(tt.fixture))
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
				t.Fatalf("got %s %s, response %v; want an admission.k8s.io/v1 AdmissionReview with a response", out.APIVersion, out.Kind, out.Response)
			}
			if out.Response.UID != in.Request.UID {
				t.Errorf("UID = %q, want %q", out.Response.UID, in.Request.UID)
			}
			if out.Response.Allowed != tt.wantAllowed || (out.Response.Patch != nil) != tt.wantPatch {
				t.Errorf("allowed = %v, patch = %d bytes; want allowed %v, patch %v", out.Response.Allowed, len(out.Response.Patch), tt.wantAllowed, tt.wantPatch)
			}
			if tt.wantPatch {
				if _, err := applyPatch(in.Request.Object.Raw, out.Response.Patch); err != nil {
					t.Errorf("the patch does not apply: %v", err)
				}
			}
		})
	}

	huge := append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":{"metadata":{"annotations":{"a":"`),
		bytes.Repeat([]byte("x"), MaxBodyBytes)...)
	huge = append(huge, `"}}}}}`...)
	bad := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		wantStatus  int
	}{
		{name: "wrong content type", method: http.MethodPost, contentType: "text/plain", body: fixture("native"), wantStatus: http.StatusUnsupportedMediaType},
		{name: "no content type", method: http.MethodPost, body: fixture("native"), wantStatus: http.StatusUnsupportedMediaType},
		{name: "malformed JSON", method: http.MethodPost, contentType: "application/json", body: []byte(`{"apiVersion":`), wantStatus: http.StatusBadRequest},
		{name: "no request", method: http.MethodPost, contentType: "application/json", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), wantStatus: http.StatusBadRequest},
		{name: "v1beta1", method: http.MethodPost, contentType: "application/json", body: bytes.Replace(fixture("native"), []byte("admission.k8s.io/v1"), []byte("admission.k8s.io/v1beta1"), 1), wantStatus: http.StatusBadRequest},
		{name: "too large", method: http.MethodPost, contentType: "application/json", body: huge, wantStatus: http.StatusRequestEntityTooLarge},
		{name: "GET", method: http.MethodGet, wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "https://"+w.addr+"/mutate", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := w.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}

	// One injection and one refusal in namespace shop; six HTTP-level
	// rejections (GET is the mux's 405, before the handler) without one.
	const wantCounters = `
# HELP jwt_sidecar_injector_failures_total Admission requests refused or answered with an HTTP error, by reason.
# TYPE jwt_sidecar_injector_failures_total counter
jwt_sidecar_injector_failures_total{namespace="",reason="bad_request"} 6
jwt_sidecar_injector_failures_total{namespace="shop",reason="malformed_annotation"} 1
# HELP jwt_sidecar_injector_injections_total Pods the sidecar was injected into (dry runs included).
# TYPE jwt_sidecar_injector_injections_total counter
jwt_sidecar_injector_injections_total{namespace="shop"} 1
`
	if err := testutil.GatherAndCompare(w.reg, strings.NewReader(wantCounters),
		"jwt_sidecar_injector_failures_total", "jwt_sidecar_injector_injections_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(w.metrics.duration); got != 3 {
		t.Errorf("request duration series = %d, want 3 (one per outcome)", got)
	}
	if got := testutil.ToFloat64(w.metrics.certReloads.WithLabelValues(ReloadOK)); got != 1 {
		t.Errorf("certificate reloads ok = %v, want 1", got)
	}
}

func TestHTTPSCertificateRotation(t *testing.T) {
	w := startWebhook(t)
	if got := w.serial(t); got.Int64() != 1 {
		t.Fatalf("serial = %v, want 1", got)
	}

	// cert-manager renews: both files are replaced. A new handshake
	// presents the new certificate.
	w.ca.writePair(t, filepath.Dir(w.certFile), 2)
	eventually(t, "the renewed certificate being served", func() bool { return w.serial(t).Int64() == 2 })
	if got := testutil.ToFloat64(w.metrics.certExpiry); got < float64(time.Now().Add(time.Hour).Unix()) {
		t.Errorf("expiry gauge = %v, want the second certificate's NotAfter (two hours from now)", got)
	}

	// A broken pair keeps the old certificate, and says so in a metric.
	writeAtomic(t, w.certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	eventually(t, "the broken certificate being tried", func() bool {
		return testutil.ToFloat64(w.metrics.certReloads.WithLabelValues(ReloadError)) >= 1
	})
	if got := w.serial(t); got.Int64() != 2 {
		t.Errorf("after a broken renewal: serial = %v, want 2 (the previous pair kept)", got)
	}
	if !w.certs.Ready() {
		t.Error("not ready after a broken renewal; the previous pair still serves")
	}

	// The next good pair is picked up again.
	w.ca.writePair(t, filepath.Dir(w.certFile), 3)
	eventually(t, "the third certificate being served", func() bool { return w.serial(t).Int64() == 3 })
}

func TestCertReloaderStartsWithoutFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	m := NewMetrics(prometheus.NewRegistry())
	r := NewCertReloader(certFile, keyFile, 10*time.Millisecond, m, discardLogger())
	if r.Ready() {
		t.Fatal("ready without certificate files")
	}
	if _, err := r.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Error("GetCertificate without a certificate: no error")
	}
	newTestCA(t).writePair(t, dir, 1)
	eventually(t, "the certificate being loaded", func() bool {
		c, err := r.GetCertificate(&tls.ClientHelloInfo{})
		return err == nil && c != nil && r.Ready()
	})
}
