package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestThumbprintRFCVectors checks the kid against the published examples.
func TestThumbprintRFCVectors(t *testing.T) {
	// RFC 7638 §3.1.
	rsaKey := &rsa.PublicKey{
		N: new(big.Int).SetBytes(b64(t, "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")),
		E: 65537,
	}
	// RFC 8037 Appendix A.3.
	edKey := ed25519.PublicKey(b64(t, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"))

	tests := []struct {
		name string
		key  any
		want string
	}{
		{name: "RFC 7638 RSA", key: rsaKey, want: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{name: "RFC 8037 Ed25519", key: edKey, want: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := thumbprint(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("thumbprint = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestThumbprintEC recomputes the EC thumbprint by hand: fixed-length
// coordinates, members in lexicographic order, no whitespace.
func TestThumbprintEC(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512"} {
		t.Run(alg, func(t *testing.T) {
			s, err := generateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			pub := s.Public().(*ecdsa.PublicKey)
			raw, err := pub.Bytes() // 0x04 || X || Y, each coordinate full length
			if err != nil {
				t.Fatal(err)
			}
			size := (len(raw) - 1) / 2
			enc := base64.RawURLEncoding.EncodeToString
			doc := fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, pub.Curve.Params().Name, enc(raw[1:1+size]), enc(raw[1+size:]))
			sum := sha256.Sum256([]byte(doc))
			want := base64.RawURLEncoding.EncodeToString(sum[:])
			got, err := thumbprint(pub)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("thumbprint = %s, want %s (of %s)", got, want, doc)
			}
		})
	}
}

func TestGenkey(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range allAlgs() {
		t.Run(alg, func(t *testing.T) {
			out := filepath.Join(dir, alg+".key")
			runCLI(t, "genkey", "-alg", alg, "-out", out)
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode != 0o600 {
				t.Errorf("mode = %o, want 600", mode)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(b)
			if block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("not a PKCS#8 PEM: %s", b)
			}
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if k, ok := key.(*rsa.PrivateKey); ok && k.N.BitLen() != rsaBits {
				t.Errorf("RSA bits = %d, want %d", k.N.BitLen(), rsaBits)
			}
			s, err := readPrivateKey(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkAlg(s, alg); err != nil {
				t.Errorf("generated key does not fit %s: %v", alg, err)
			}
		})
	}
}

func TestGenkeyOverwrite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "k.pem")
	runCLI(t, "genkey", "-alg", "EdDSA", "-out", out)
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"genkey", "-alg", "EdDSA", "-out", out}, &bytes.Buffer{}, &stderr, nil); code != 1 {
		t.Errorf("exit = %d, want 1 for an existing file", code)
	}
	if !strings.Contains(stderr.String(), "-force") {
		t.Errorf("stderr = %q, want a hint about -force", stderr.String())
	}
	runCLI(t, "genkey", "-alg", "EdDSA", "-out", out, "-force")
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, second) {
		t.Error("-force did not write a new key")
	}
}

func TestGenkeyStdout(t *testing.T) {
	out := runCLI(t, "genkey", "-alg", "ES256")
	if _, err := parsePrivateKey([]byte(out)); err != nil {
		t.Errorf("stdout is not a private key: %v\n%s", err, out)
	}
}

func TestPubkey(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			path := writeKey(t, dir, alg)
			s, err := readPrivateKey(path)
			if err != nil {
				t.Fatal(err)
			}
			out := runCLI(t, "pubkey", "-key", path)
			block, _ := pem.Decode([]byte(out))
			if block == nil || block.Type != "PUBLIC KEY" {
				t.Fatalf("not a PKIX PEM: %s", out)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(s.Public()) {
				t.Error("pubkey output is not the key's public half")
			}
		})
	}
}

func TestReadPrivateKeyErrors(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pub, []byte(runCLI(t, "pubkey", "-key", writeKey(t, dir, "ES256"))), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{pub, garbage, filepath.Join(dir, "missing.pem")} {
		if _, err := readPrivateKey(path); err == nil {
			t.Errorf("readPrivateKey(%s) = nil error", filepath.Base(path))
		}
	}
}
