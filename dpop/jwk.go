package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// privateMembers are JWK members that only a private or symmetric key has
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2). A proof's jwk must be a
// public key (RFC 9449 §4.2), so any of them refuses it.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicKey is a proof's jwk decoded: the key, the algs it may verify, and
// its RFC 7638 thumbprint.
type publicKey struct {
	key  crypto.PublicKey
	algs []string
	jkt  string
}

// parseJWK decodes the jwk header of a proof. Only the members the key
// type needs are read; every one must be a base64url string without
// padding.
func parseJWK(v any) (*publicKey, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the jwk header is not a JSON object")
	}
	for _, p := range privateMembers {
		if _, ok := m[p]; ok {
			return nil, fmt.Errorf("the jwk has the private member %q", p)
		}
	}
	kty, _ := m["kty"].(string)
	switch kty {
	case "EC":
		return parseEC(m)
	case "RSA":
		return parseRSA(m)
	case "OKP":
		return parseOKP(m)
	}
	return nil, fmt.Errorf("the jwk kty %q is not EC, RSA or OKP", kty)
}

// member returns the base64url member name of m, decoded, with its text.
func member(m map[string]any, name string) ([]byte, string, error) {
	s, ok := m[name].(string)
	if !ok || s == "" {
		return nil, "", fmt.Errorf("the jwk has no %s", name)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, "", fmt.Errorf("the jwk's %s is not base64url: %w", name, err)
	}
	return b, s, nil
}

func parseEC(m map[string]any) (*publicKey, error) {
	crv, _ := m["crv"].(string)
	var curve elliptic.Curve
	var alg string
	switch crv {
	case "P-256":
		curve, alg = elliptic.P256(), "ES256"
	case "P-384":
		curve, alg = elliptic.P384(), "ES384"
	case "P-521":
		curve, alg = elliptic.P521(), "ES512"
	default:
		return nil, fmt.Errorf("the jwk crv %q is not P-256, P-384 or P-521", crv)
	}
	x, xs, err := member(m, "x")
	if err != nil {
		return nil, err
	}
	y, ys, err := member(m, "y")
	if err != nil {
		return nil, err
	}
	size := (curve.Params().BitSize + 7) / 8
	// RFC 7518 §6.2.1.2: x and y are the full coordinate length.
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("the jwk's x and y must have %d bytes", size)
	}
	// Uncompressed point encoding, so that the standard library checks the
	// point is on the curve.
	raw := append(append([]byte{4}, x...), y...)
	key, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, fmt.Errorf("the jwk is not a point on %s: %w", crv, err)
	}
	// RFC 7638 §3.2: the required members in lexicographic order.
	tp := `{"crv":"` + crv + `","kty":"EC","x":"` + xs + `","y":"` + ys + `"}`
	return &publicKey{key: key, algs: []string{alg}, jkt: thumb(tp)}, nil
}

func parseRSA(m map[string]any) (*publicKey, error) {
	n, ns, err := member(m, "n")
	if err != nil {
		return nil, err
	}
	e, es, err := member(m, "e")
	if err != nil {
		return nil, err
	}
	if n[0] == 0 || e[0] == 0 {
		return nil, errors.New("the jwk's n and e must have no leading zero byte")
	}
	if len(e) > 4 {
		return nil, errors.New("the jwk's e is too large")
	}
	eInt := int(new(big.Int).SetBytes(e).Int64())
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: eInt}
	if key.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("the RSA jwk has %d bits; at least %d are needed", key.N.BitLen(), minRSABits)
	}
	if eInt < 3 || eInt%2 == 0 {
		return nil, errors.New("the jwk's e is not a valid RSA exponent")
	}
	tp := `{"e":"` + es + `","kty":"RSA","n":"` + ns + `"}`
	return &publicKey{key: key, algs: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, jkt: thumb(tp)}, nil
}

func parseOKP(m map[string]any) (*publicKey, error) {
	if crv, _ := m["crv"].(string); crv != "Ed25519" {
		return nil, fmt.Errorf("the OKP jwk crv %q is not Ed25519", crv)
	}
	x, xs, err := member(m, "x")
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("the Ed25519 jwk's x must have %d bytes", ed25519.PublicKeySize)
	}
	tp := `{"crv":"Ed25519","kty":"OKP","x":"` + xs + `"}`
	return &publicKey{key: ed25519.PublicKey(x), algs: []string{"EdDSA"}, jkt: thumb(tp)}, nil
}

// thumb is base64url(SHA-256(canonical JWK)) (RFC 7638 §3). The members
// are base64url text checked above, so they need no JSON escaping.
func thumb(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// fits reports whether the key may verify alg.
func (k *publicKey) fits(alg string) bool { return slices.Contains(k.algs, alg) }
