package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
)

// minRSABits is the smallest RSA modulus a client key may have (RFC 7518
// §3.3 requires 2048 bits).
const minRSABits = 2048

// clientKey is one public key a client signs its jwt-bearer assertions with.
type clientKey struct {
	// kid is the JWK's kid; "" for a PEM key or a JWK without one, which
	// then matches an assertion with any kid or none.
	kid string
	// algs are the algs this key verifies: those its type allows, or only
	// the JWK's alg when it has one. Never none, never HS*.
	algs   []string
	public crypto.PublicKey
}

// parseClientKeyEntries checks the syntax of CLIENT_KEYS, client_id=path
// entries, and returns the path of each client. It reads no file.
func parseClientKeyEntries(entries []string) (map[string]string, error) {
	paths := make(map[string]string, len(entries))
	for _, e := range entries {
		id, path, ok := strings.Cut(strings.TrimSpace(e), "=")
		switch {
		case !ok || id == "" || path == "":
			return nil, fmt.Errorf("entry %q is not client_id=/path/to/public.pem or client_id=/path/to/jwks.json", e)
		case paths[id] != "":
			return nil, fmt.Errorf("client %q appears twice", id)
		}
		paths[id] = path
	}
	return paths, nil
}

// loadClientKeys reads the key file of every CLIENT_KEYS entry.
func loadClientKeys(entries []string) (map[string][]clientKey, error) {
	paths, err := parseClientKeyEntries(entries)
	if err != nil {
		return nil, err
	}
	keys := make(map[string][]clientKey, len(paths))
	for id, path := range paths {
		ks, err := readClientKeys(path)
		if err != nil {
			return nil, fmt.Errorf("client %q: %w", id, err)
		}
		keys[id] = ks
	}
	return keys, nil
}

// readClientKeys reads a JWKS when the file is JSON, else the PEM public
// keys (PKIX, PKCS #1 or a certificate) with the sidecar's own
// PUBLIC_KEY_FILES reader, which refuses private keys.
func readClientKeys(path string) ([]clientKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		keys, err := parseClientJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return keys, nil
	}
	static, err := keys.ReadPublicKeys(path) // its errors name path
	if err != nil {
		return nil, err
	}
	keys := make([]clientKey, len(static))
	for i, k := range static {
		algs, err := publicAlgs(k.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		keys[i] = clientKey{algs: algs, public: k.Key}
	}
	return keys, nil
}

// parseClientJWKS decodes the signing keys of a JWK Set. Keys for another
// use are skipped; private and symmetric keys are refused, since a JWKS
// that holds them was published by mistake.
func parseClientJWKS(b []byte) ([]clientKey, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var keys []clientKey
	for i, m := range set.Keys {
		switch {
		case m.KTY == jwkset.KtyOct:
			return nil, fmt.Errorf("key %d (kid %q) is symmetric; only RSA, EC and OKP public keys may sign assertions", i, m.KID)
		case m.D != "":
			return nil, fmt.Errorf("key %d (kid %q) is a private key; publish only the public key", i, m.KID)
		case m.USE != "" && m.USE != jwkset.UseSig:
			continue
		}
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err)
		}
		algs, err := publicAlgs(j.Key())
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err)
		}
		if m.ALG != "" {
			if !slices.Contains(algs, string(m.ALG)) {
				return nil, fmt.Errorf("key %d (kid %q): alg %q does not fit the key type", i, m.KID, m.ALG)
			}
			algs = []string{string(m.ALG)}
		}
		keys = append(keys, clientKey{kid: m.KID, algs: algs, public: j.Key()})
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS has no signing key")
	}
	return keys, nil
}

// publicAlgs returns the algs a public key may verify, by its type: RSA
// (at least minRSABits) RS* and PS*, P-256 ES256, P-384 ES384, P-521
// ES512, Ed25519 EdDSA.
func publicAlgs(pub any) ([]string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are needed", k.N.BitLen(), minRSABits)
		}
		return rsaAlgs(), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("curve %s: %w", k.Curve.Params().Name, errKeyType)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("%T: %w", pub, errKeyType)
}
