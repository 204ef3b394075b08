package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// rsaBits is the modulus size of generated RSA keys.
const rsaBits = 2048

// serveAlgs returns the SIGNING_ALG values that serve accepts.
func serveAlgs() []string { return []string{"RS256", "ES256", "EdDSA"} }

// rsaAlgs returns the algs an RSA key can sign with.
func rsaAlgs() []string { return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} }

// allAlgs returns every alg genkey and mint support.
func allAlgs() []string { return append(rsaAlgs(), "ES256", "ES384", "ES512", "EdDSA") }

// errKeyType says that a key cannot sign with the requested alg.
var errKeyType = errors.New("key type does not fit the algorithm")

// signingKey is a private key with its JWS algorithm and its kid.
type signingKey struct {
	kid    string
	alg    string
	method jwt.SigningMethod
	signer crypto.Signer
	// public is signer.Public(), kept because /introspect verifies with it
	// on every request and Ed25519's Public() copies the key.
	public crypto.PublicKey
}

// newSigningKey pairs a private key with alg; an empty alg is derived from
// the key type. The kid is the key's RFC 7638 thumbprint.
func newSigningKey(signer crypto.Signer, alg string) (*signingKey, error) {
	if alg == "" {
		var err error
		if alg, err = defaultAlg(signer); err != nil {
			return nil, err
		}
	}
	if err := checkAlg(signer, alg); err != nil {
		return nil, err
	}
	kid, err := thumbprint(signer.Public())
	if err != nil {
		return nil, err
	}
	return &signingKey{kid: kid, alg: alg, method: jwt.GetSigningMethod(alg), signer: signer, public: signer.Public()}, nil
}

// sign signs claims with the key. The JOSE header has alg, typ and, with
// withKID, the key's kid; header entries are added last, so they may
// override any of them.
func (k *signingKey) sign(claims jwt.Claims, header map[string]any, withKID bool) (string, error) {
	tok := jwt.NewWithClaims(k.method, claims)
	if withKID {
		tok.Header["kid"] = k.kid
	}
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(k.signer)
	if err != nil {
		return "", fmt.Errorf("sign with %s key %s: %w", k.alg, k.kid, err)
	}
	return s, nil
}

// jwk returns the public JWK of the key with kid, alg and use=sig.
func (k *signingKey) jwk() (jwkset.JWKMarshal, error) {
	return publicJWK(k.signer.Public(), k.kid, k.alg)
}

// publicJWK builds the public JWK of pub with jwkset.
func publicJWK(pub crypto.PublicKey, kid, alg string) (jwkset.JWKMarshal, error) {
	j, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg), USE: jwkset.UseSig},
	})
	if err != nil {
		return jwkset.JWKMarshal{}, fmt.Errorf("build jwk: %w", err)
	}
	return j.Marshal(), nil
}

// thumbprint is the RFC 7638 JWK SHA-256 thumbprint of pub, base64url
// without padding: the kid used everywhere, so that mint and serve agree on
// a key file without configuration.
func thumbprint(pub crypto.PublicKey) (string, error) {
	j, err := publicJWK(pub, "", "")
	if err != nil {
		return "", err
	}
	// RFC 7638 §3.2: only the required members, in lexicographic order, no
	// whitespace. Struct fields are marshaled in declaration order, and the
	// base64url values need no escaping.
	var v any
	switch j.KTY {
	case jwkset.KtyRSA:
		v = struct {
			E   string `json:"e"`
			KTY string `json:"kty"`
			N   string `json:"n"`
		}{j.E, string(j.KTY), j.N}
	case jwkset.KtyEC, jwkset.KtyOKP: // RFC 8037 §2 for OKP: crv, kty, x
		m := map[string]string{"crv": string(j.CRV), "kty": string(j.KTY), "x": j.X}
		if j.KTY == jwkset.KtyEC {
			m["y"] = j.Y
		}
		v = m // encoding/json sorts map keys
	default:
		return "", fmt.Errorf("thumbprint of %T: %w", pub, errKeyType)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// defaultAlg is the alg for a key type: RSA→RS256, P-256→ES256,
// P-384→ES384, P-521→ES512, Ed25519→EdDSA.
func defaultAlg(signer crypto.Signer) (string, error) {
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		return "RS256", nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", fmt.Errorf("curve %s: %w", k.Curve.Params().Name, errKeyType)
	case ed25519.PrivateKey:
		return "EdDSA", nil
	}
	return "", fmt.Errorf("%T: %w", signer, errKeyType)
}

// checkAlg reports whether signer can sign with alg.
func checkAlg(signer crypto.Signer, alg string) error {
	ok := false
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		ok = slices.Contains(rsaAlgs(), alg)
	case *ecdsa.PrivateKey:
		want, err := defaultAlg(k)
		ok = err == nil && alg == want
	case ed25519.PrivateKey:
		ok = alg == "EdDSA"
	}
	if !ok {
		return fmt.Errorf("alg %q with a %s key: %w", alg, keyType(signer), errKeyType)
	}
	return nil
}

// keyType names a key's type for messages.
func keyType(signer crypto.Signer) string {
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PrivateKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PrivateKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", signer)
}

// generateKey makes a fresh private key fit for alg.
func generateKey(alg string) (crypto.Signer, error) {
	var (
		s   crypto.Signer
		err error
	)
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		s, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		s, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("generate key: unsupported alg %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return s, nil
}

// encodePrivateKey returns key as PKCS#8 PEM.
func encodePrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// encodePublicKey returns the public half of key as PKIX PEM.
func encodePublicKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// readPrivateKey loads a PEM private key: PKCS#8, and for convenience also
// PKCS#1 (RSA PRIVATE KEY) and SEC 1 (EC PRIVATE KEY).
func readPrivateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	s, err := parsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// parsePrivateKey decodes the first PEM block of b as a private key.
func parsePrivateKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T: %w", key, errKeyType)
	}
	if _, err := defaultAlg(s); err != nil {
		return nil, err
	}
	return s, nil
}
