package keys

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/jwt-sidecar/jwt-sidecar/internal/atomicfile"
)

// ReadPublicKeys reads PEM public keys (PKIX "PUBLIC KEY", PKCS#1 "RSA
// PUBLIC KEY" or a certificate) for PUBLIC_KEY_FILES.
func ReadPublicKeys(path string) ([]StaticKey, error) {
	raw, err := atomicfile.ReadLimited(path, 1<<20)
	if err != nil {
		return nil, err
	}
	var out []StaticKey
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		var key any
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("%s: PEM block %q is not a public key", path, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if _, err := fingerprint(key); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, StaticKey{Key: key})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key found", path)
	}
	return out, nil
}

// ReadHMACSecret reads HMAC_SECRET_FILE (see ReadSecret); the secret must
// be at least 32 bytes (RFC 7518 §3.2).
func ReadHMACSecret(path string) ([]byte, error) {
	raw, err := ReadSecret(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 32 {
		return nil, fmt.Errorf("%s: the secret has %d bytes; at least 32 are required", path, len(raw))
	}
	return raw, nil
}

// ReadSecret reads a secret file: the whole file, at most 64 KiB, but one
// trailing newline (LF or CRLF), as editors and `echo` leave it.
func ReadSecret(path string) ([]byte, error) {
	raw, err := atomicfile.ReadLimited(path, 1<<16)
	if err != nil {
		return nil, err
	}
	if n := len(raw); n > 0 && raw[n-1] == '\n' {
		raw = raw[:n-1]
		if n := len(raw); n > 0 && raw[n-1] == '\r' {
			raw = raw[:n-1]
		}
	}
	return raw, nil
}
