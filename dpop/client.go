package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Client builds DPoP proofs (RFC 9449 §4) with one private key: the
// client's side of what Checker checks. Tools, tests and the demo use it to
// ask jwt-issuer for a DPoP-bound token and to call through the sidecar. It
// is safe for concurrent use.
type Client struct {
	signer crypto.Signer
	method jwt.SigningMethod
	jwk    map[string]any
	jkt    string
	// Now is the clock of iat; nil means time.Now. A test sets it to build
	// stale or future proofs.
	Now func() time.Time
}

// NewClient returns a Client for key: an ECDSA key on P-256, P-384 or
// P-521 (ES256, ES384, ES512), an RSA key of at least 2048 bits (PS256) or
// an Ed25519 key (EdDSA): the algs Checker accepts by default.
func NewClient(key crypto.Signer) (*Client, error) {
	jwk, method, err := publicJWK(key)
	if err != nil {
		return nil, err
	}
	// The thumbprint as the resource server computes it (parseJWK), so
	// that client and server cannot disagree on cnf.jkt.
	pk, err := parseJWK(jwk)
	if err != nil {
		return nil, fmt.Errorf("the key's own jwk does not parse: %w", err)
	}
	return &Client{signer: key, method: method, jwk: jwk, jkt: pk.jkt}, nil
}

// JKT is the RFC 7638 thumbprint of the client's public key: the cnf.jkt
// of the tokens bound to it.
func (c *Client) JKT() string { return c.jkt }

// Alg is the proofs' alg.
func (c *Client) Alg() string { return c.method.Alg() }

// Proof returns a fresh proof (a new random jti, iat now) for a request of
// method to uri. The query and fragment of uri are dropped (§4.2: htu has
// neither). accessToken, when not empty, is hashed into ath, as every
// request to a resource server needs (§7.1); a token request (§5) passes
// "". nonce, when not empty, is the server's last DPoP-Nonce (§8).
func (c *Client) Proof(method, uri, accessToken, nonce string) (string, error) {
	if method == "" {
		return "", errors.New("a DPoP proof needs the request method")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("the request URI: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("the request URI %q is not an absolute http(s) URI", uri)
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = "", "", "", false
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	claims := jwt.MapClaims{
		"jti": rand.Text(),
		"htm": method,
		"htu": u.String(),
		"iat": now().Unix(),
	}
	if accessToken != "" {
		claims["ath"] = TokenHash(accessToken)
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	t := jwt.NewWithClaims(c.method, claims)
	t.Header["typ"] = "dpop+jwt"
	t.Header["jwk"] = c.jwk
	s, err := t.SignedString(c.signer)
	if err != nil {
		return "", fmt.Errorf("sign the DPoP proof: %w", err)
	}
	return s, nil
}

// publicJWK is the public JWK of key (RFC 7518 §6; RFC 8037 §2) and the
// signing method of its proofs.
func publicJWK(key crypto.Signer) (map[string]any, jwt.SigningMethod, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		var crv string
		var m jwt.SigningMethod
		switch k.Curve {
		case elliptic.P256():
			crv, m = "P-256", jwt.SigningMethodES256
		case elliptic.P384():
			crv, m = "P-384", jwt.SigningMethodES384
		case elliptic.P521():
			crv, m = "P-521", jwt.SigningMethodES512
		default:
			return nil, nil, errors.New("an ECDSA DPoP key must be on P-256, P-384 or P-521")
		}
		raw, err := k.PublicKey.Bytes() // uncompressed: 0x04 || x || y, each full size
		if err != nil {
			return nil, nil, err
		}
		size := (len(raw) - 1) / 2
		return map[string]any{"kty": "EC", "crv": crv, "x": b64url(raw[1 : 1+size]), "y": b64url(raw[1+size:])}, m, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, nil, fmt.Errorf("an RSA DPoP key needs at least %d bits, this one has %d", minRSABits, k.N.BitLen())
		}
		return map[string]any{"kty": "RSA", "n": b64url(k.N.Bytes()), "e": b64url(big.NewInt(int64(k.E)).Bytes())}, jwt.SigningMethodPS256, nil
	case ed25519.PrivateKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64url(k.Public().(ed25519.PublicKey))}, jwt.SigningMethodEdDSA, nil
	}
	return nil, nil, fmt.Errorf("a DPoP key must be ECDSA, RSA or Ed25519, not %T", key)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
