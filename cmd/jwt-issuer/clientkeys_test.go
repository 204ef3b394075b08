package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

func TestLoadClientKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rsaSigner := jwttest.NewSigner(t, "RS256", "r1")
	ecSigner := jwttest.NewSigner(t, "ES384", "e1")
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rsaSigner.Key.Public().(*rsa.PublicKey))})
	pkix, err := encodePublicKey(ecSigner.Key)
	if err != nil {
		t.Fatal(err)
	}
	private, err := encodePrivateKey(ecSigner.Key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1)}, &x509.Certificate{SerialNumber: big.NewInt(1)}, ecSigner.Key.Public(), ecSigner.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	jwk := func(s jwttest.Signer, edit func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(s.JWK(t), &m); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(m)
		}
		b, err := json.Marshal(map[string]any{"keys": []any{m}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	tests := []struct {
		name     string
		file     []byte
		wantKID  string
		wantAlgs []string
		wantErr  string
	}{
		{name: "PKIX EC", file: pkix, wantAlgs: []string{"ES384"}},
		{name: "PKCS1 RSA", file: pkcs1, wantAlgs: rsaAlgs()},
		{name: "JWKS with alg", file: jwk(rsaSigner, nil), wantKID: "r1", wantAlgs: []string{"RS256"}},
		{name: "JWKS without alg", file: jwk(rsaSigner, func(m map[string]any) { delete(m, "alg") }), wantKID: "r1", wantAlgs: rsaAlgs()},
		{name: "JWKS with leading space", file: append([]byte("\n  "), jwk(ecSigner, nil)...), wantKID: "e1", wantAlgs: []string{"ES384"}},
		{name: "certificate", file: cert, wantAlgs: []string{"ES384"}},
		{name: "private PEM", file: private, wantErr: `"PRIVATE KEY" is not a public key`},
		{name: "not PEM", file: []byte("hello"), wantErr: "no PEM public key"},
		{name: "certificate request PEM", file: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1}}), wantErr: "not a public key"},
		{name: "small RSA", file: func() []byte {
			k, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
			return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}(), wantErr: "1024 bits"},
		{name: "JWK alg does not fit", file: jwk(ecSigner, func(m map[string]any) { m["alg"] = "ES256" }), wantErr: "does not fit"},
		{name: "JWK HS256 alg", file: jwk(rsaSigner, func(m map[string]any) { m["alg"] = "HS256" }), wantErr: "does not fit"},
		{name: "symmetric JWK", file: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}`), wantErr: "symmetric"},
		{name: "private JWK", file: jwk(ecSigner, func(m map[string]any) { m["d"] = "AAAA" }), wantErr: "private key"},
		{name: "only an encryption key", file: jwk(rsaSigner, func(m map[string]any) { m["use"] = "enc" }), wantErr: "no signing key"},
		{name: "empty JWKS", file: []byte(`{"keys":[]}`), wantErr: "no signing key"},
		{name: "bad JSON", file: []byte(`{"keys":`), wantErr: "parse JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(strings.ReplaceAll(tt.name, " ", "_"), tt.file)
			got, err := loadClientKeys([]string{"c=" + path})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `client "c"`) {
					t.Errorf("error = %v, want one naming client c and containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got["c"]) != 1 {
				t.Fatalf("keys = %v, want one", got)
			}
			k := got["c"][0]
			if k.kid != tt.wantKID || !slices.Equal(k.algs, tt.wantAlgs) {
				t.Errorf("key kid %q algs %v, want %q %v", k.kid, k.algs, tt.wantKID, tt.wantAlgs)
			}
		})
	}
}

func TestClientKeysConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		value   string
		wantErr string
	}{
		{name: "no equals sign", value: "demo", wantErr: "not client_id="},
		{name: "empty path", value: "demo=", wantErr: "not client_id="},
		{name: "empty id", value: "=/x.pem", wantErr: "not client_id="},
		{name: "twice", value: "demo=/a.pem,demo=/b.pem", wantErr: "appears twice"},
		{name: "missing file", value: "demo=" + filepath.Join(dir, "missing.pem"), wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			environ := []string{"LISTEN_ADDR=127.0.0.1:0", "CLIENT_KEYS=" + tt.value}
			if code := run(ctx, nil, io.Discard, &stderr, environ); code != 1 {
				t.Errorf("exit = %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), "CLIENT_KEYS") || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want CLIENT_KEYS and %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

// TestServeJWTBearerFromTheShell follows the README: genkey and pubkey make
// a client key pair, serve reads CLIENT_KEYS, the assertion subcommand
// signs, /token grants, /introspect and /revoke see the token.
func TestServeJWTBearerFromTheShell(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "client.key")
	runCLI(t, "genkey", "-alg", "EdDSA", "-out", key)
	pub := filepath.Join(dir, "client.pub")
	if err := os.WriteFile(pub, []byte(runCLI(t, "pubkey", "-key", key)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, "CLIENT_KEYS=robot="+pub, "CLIENTS=robot:robot-secret,demo:demo-secret")
	assertion := strings.TrimSpace(runCLI(t, "assertion", "-key", key, "-client", "robot", "-aud", base+"/token"))

	form := url.Values{"grant_type": {grantJWTBearer}, "assertion": {assertion}, "scope": {"read"}}
	resp, body := postForm(t, base+"/token", "", form)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwt-bearer = %d %s", resp.StatusCode, body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	if resp, body := postForm(t, base+"/token", "", form); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed assertion = %d %s, want 400", resp.StatusCode, body)
	}

	resp, body = postForm(t, base+"/introspect", basic("demo", "demo-secret"), url.Values{"token": {tr.AccessToken}})
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("introspect = %d %s", resp.StatusCode, body)
	}
	if got["active"] != true || got["sub"] != "robot" || got["scope"] != "read" || got["iss"] != base {
		t.Errorf("introspection = %v, want active, sub robot, scope read, iss %s", got, base)
	}
	if resp, body := postForm(t, base+"/revoke", basic("robot", "robot-secret"), url.Values{"token": {tr.AccessToken}}); resp.StatusCode != 200 {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}
	_, body = postForm(t, base+"/introspect", basic("demo", "demo-secret"), url.Values{"token": {tr.AccessToken}})
	if strings.TrimSpace(string(body)) != `{"active":false}` {
		t.Errorf("after revocation = %s, want {\"active\":false}", body)
	}
}

func TestAssertionCommand(t *testing.T) {
	path := writeKey(t, t.TempDir(), "ES256")
	var out, errOut bytes.Buffer
	if err := runAssertion([]string{"-key", path, "-client", "robot", "-aud", "a,b", "-ttl", "2m", "-jti", "j1"}, &out, &errOut, t0); err != nil {
		t.Fatal(err)
	}
	h, p := decode(t, out.String())
	if h["alg"] != "ES256" || h["kid"] == nil {
		t.Errorf("header = %v, want ES256 with the thumbprint kid", h)
	}
	want := map[string]string{"iss": `"robot"`, "sub": `"robot"`, "aud": `["a","b"]`, "jti": `"j1"`, "iat": "1800000000", "exp": "1800000120"}
	for k, w := range want {
		if b, _ := json.Marshal(p[k]); string(b) != w {
			t.Errorf("%s = %s, want %s", k, b, w)
		}
	}
	for _, args := range [][]string{
		{"-client", "robot"},
		{"-key", path},
		{"-key", path, "-client", "robot", "-kid", "x", "-no-kid"},
		{"-key", path, "-client", "robot", "-kid", ""},
		{"-key", path, "-client", "robot", "extra"},
	} {
		if err := runAssertion(args, io.Discard, io.Discard, t0); err == nil {
			t.Errorf("assertion %v succeeded, want an error", args)
		}
	}
}
