//go:build linux

package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// The token jwt-sidecar verifies on every request, and what it maps.
const (
	tokenIssuer   = "https://issuer.load.test"
	tokenAudience = "jwt-sidecar-load"
	tokenSubject  = "load-user"
	tokenKeyID    = "load-rs256"
	subjectHeader = "X-Auth-Subject" // CLAIMS_TO_HEADERS=sub=X-Auth-Subject
)

// credentials are a signed token and what verifies it: a JWKS file, or,
// when issuerURL is set, the OIDC issuer that issued it (make peers).
type credentials struct {
	token     string
	subject   string // the token's sub, which the upstream must see
	jwksFile  string
	issuerURL string
}

// newCredentials makes an RSA-2048 key, writes its public half to dir as a
// JWKS with a kid, and signs one RS256 token valid for validFor.
func newCredentials(dir string, now time.Time, validFor time.Duration) (credentials, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return credentials{}, fmt.Errorf("generate key: %w", err)
	}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.AlgRS256, KID: tokenKeyID, USE: jwkset.UseSig},
	})
	if err != nil {
		return credentials{}, fmt.Errorf("jwk: %w", err)
	}
	set, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		return credentials{}, fmt.Errorf("jwks: %w", err)
	}
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, set, 0o644); err != nil {
		return credentials{}, err
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   tokenSubject,
		Audience:  jwt.ClaimStrings{tokenAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(validFor)),
	})
	tok.Header["kid"] = tokenKeyID
	signed, err := tok.SignedString(key)
	if err != nil {
		return credentials{}, fmt.Errorf("sign: %w", err)
	}
	return credentials{token: signed, subject: tokenSubject, jwksFile: path}, nil
}
