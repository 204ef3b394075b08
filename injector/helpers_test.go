package injector

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testImage = "ghcr.io/jwt-sidecar/jwt-sidecar:v0.1.0"

// testDefaults are what a typical chart installation sets.
func testDefaults() map[string]string {
	return map[string]string{
		UpstreamPort: "8080",
		Issuers:      "https://issuer.example",
		JWKSURLs:     "https://issuer.example/jwks.json",
		Audiences:    "api",
		Native:       "true",
	}
}

func testResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("25m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
}

func newTestInjector(t testing.TB, defaults map[string]string) (*Injector, *prometheus.Registry) {
	t.Helper()
	return newTestInjectorWith(t, defaults, func(*Options) {})
}

// newTestInjectorWith is newTestInjector with the options changed by edit.
func newTestInjectorWith(t testing.TB, defaults map[string]string, edit func(*Options)) (*Injector, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{
		Image:      testImage,
		PullPolicy: corev1.PullIfNotPresent,
		Defaults:   defaults,
		Resources:  testResources(),
		LogLevel:   "info",
	}
	edit(&opts)
	in, err := New(opts, NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	return in, reg
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// applyPatch applies RFC 6902 "add" and "replace" operations to a JSON
// document: all the injector emits. Anything else is an error.
func applyPatch(doc, patch []byte) ([]byte, error) {
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	for i, op := range ops {
		if op.Op != "add" && op.Op != "replace" {
			return nil, fmt.Errorf("op %d: unsupported op %q", i, op.Op)
		}
		if !strings.HasPrefix(op.Path, "/") {
			return nil, fmt.Errorf("op %d: path %q does not start with /", i, op.Path)
		}
		var v any
		if err := json.Unmarshal(op.Value, &v); err != nil {
			return nil, fmt.Errorf("op %d: value: %w", i, err)
		}
		var tokens []string
		for _, t := range strings.Split(op.Path[1:], "/") {
			// RFC 6901 §4: "~1" first, then "~0".
			tokens = append(tokens, strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~"))
		}
		var err error
		if root, err = setAt(root, tokens, op.Op, v); err != nil {
			return nil, fmt.Errorf("op %d (%s %s): %w", i, op.Op, op.Path, err)
		}
	}
	return json.Marshal(root)
}

// setAt returns node with value set at the path tokens.
func setAt(node any, tokens []string, op string, value any) (any, error) {
	tok, last := tokens[0], len(tokens) == 1
	switch n := node.(type) {
	case map[string]any:
		child, exists := n[tok]
		if last {
			if op == "replace" && !exists {
				return nil, fmt.Errorf("replace: %q does not exist", tok)
			}
			n[tok] = value
			return n, nil
		}
		if !exists {
			return nil, fmt.Errorf("%q does not exist", tok)
		}
		c, err := setAt(child, tokens[1:], op, value)
		n[tok] = c
		return n, err
	case []any:
		if last && tok == "-" && op == "add" {
			return append(n, value), nil
		}
		i, err := strconv.Atoi(tok)
		if err != nil || i < 0 || i > len(n) || (i == len(n) && (!last || op != "add")) {
			return nil, fmt.Errorf("index %q out of range for %d elements", tok, len(n))
		}
		if !last {
			c, err := setAt(n[i], tokens[1:], op, value)
			n[i] = c
			return n, err
		}
		if op == "replace" {
			n[i] = value
			return n, nil
		}
		return append(n[:i], append([]any{value}, n[i:]...)...), nil
	default:
		return nil, fmt.Errorf("cannot descend into %T at %q", node, tok)
	}
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jwt-sidecar-injector test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// writePair issues a server certificate for the webhook's Service name and
// 127.0.0.1 and writes it with its key into dir, each file replaced by a
// rename as a Secret volume update does. The serial also sets the
// validity, so each pair is distinguishable.
func (ca *testCA) writePair(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "jwt-sidecar-injector.jwt-sidecar.svc"},
		DNSNames:     []string{"jwt-sidecar-injector.jwt-sidecar.svc"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Duration(serial) * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
