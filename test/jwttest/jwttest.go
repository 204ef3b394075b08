// Package jwttest makes real keys, real signed tokens and real JWK Sets for
// the project's tests, so that every package tests against the same thing
// an issuer would send. It is imported only by tests.
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Now is the fixed "now" of the tests: Claims are valid at it, and a
// verifier under test reads it as its clock.
var Now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// The issuers and the audience of the tests' tokens.
const (
	IssuerA  = "https://issuer-a.test"
	IssuerB  = "https://issuer-b.test"
	Audience = "api"
)

// Claims are valid claims at Now for issuer iss: audience Audience, subject
// alice, scopes read and write, issued a minute ago, ten minutes to live.
func Claims(iss string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   iss,
		"sub":   "alice",
		"aud":   Audience,
		"iat":   Now.Add(-time.Minute).Unix(),
		"nbf":   Now.Add(-time.Minute).Unix(),
		"exp":   Now.Add(10 * time.Minute).Unix(),
		"scope": "read write",
	}
}

// Signer is one private key with the kid and alg it signs with.
type Signer struct {
	KID string
	Alg string
	Key crypto.Signer
}

// NewSigner generates a key for alg: RSA 2048 for RS*/PS*, the matching
// curve for ES*, Ed25519 for EdDSA.
func NewSigner(t testing.TB, alg, kid string) Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("jwttest: no key type for alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return Signer{KID: kid, Alg: alg, Key: k}
}

// WithKID is the same key under another kid (generating many RSA keys
// only slows tests down).
func (s Signer) WithKID(kid string) Signer {
	s.KID = kid
	return s
}

// Sign signs claims, with kid in the header when the signer has one.
func (s Signer) Sign(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	return s.SignWith(t, c, nil)
}

// SignWith signs claims, adding extra JOSE header parameters.
func (s Signer) SignWith(t testing.TB, c jwt.MapClaims, extra map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(s.Alg), c)
	if s.KID != "" {
		tok.Header["kid"] = s.KID
	}
	for k, v := range extra {
		tok.Header[k] = v
	}
	out, err := tok.SignedString(s.Key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// JWK is the public key as a JWK with kid, alg and use=sig.
func (s Signer) JWK(t testing.TB) json.RawMessage {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(s.Key.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: s.KID, ALG: jwkset.ALG(s.Alg), USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(j.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// JWKS is a JWK Set document holding the signers' public keys.
func JWKS(t testing.TB, signers ...Signer) []byte {
	t.Helper()
	keys := make([]json.RawMessage, 0, len(signers))
	for _, s := range signers {
		keys = append(keys, s.JWK(t))
	}
	raw, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
