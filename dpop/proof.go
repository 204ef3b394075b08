package dpop

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxProofBytes bounds a DPoP header value. A proof with a 4096-bit RSA
// jwk and a signature is under 2 KB.
const maxProofBytes = 8 << 10

// DefaultAlgorithms are the asymmetric algs accepted for proofs when none
// are configured: never none, never HS* (RFC 9449 §4.2).
var DefaultAlgorithms = []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"}

// asymmetric are the algs a proof may ever use.
var asymmetric = map[string]bool{"ES256": true, "ES384": true, "ES512": true, "PS256": true, "PS384": true,
	"PS512": true, "RS256": true, "RS384": true, "RS512": true, "EdDSA": true}

// Proof is a DPoP proof whose signature verified with its own jwk. Its
// claims are not yet checked against any request.
type Proof struct {
	// JKT is the RFC 7638 thumbprint of the proof's key.
	JKT   string
	JTI   string
	HTM   string
	HTU   string
	IAT   time.Time
	ATH   string // "" when absent
	Nonce string // "" when absent
}

// proofClaims is the payload of a proof, read strictly by type.
type proofClaims struct {
	JTI   *string          `json:"jti"`
	HTM   *string          `json:"htm"`
	HTU   *string          `json:"htu"`
	IAT   *json.RawMessage `json:"iat"`
	ATH   *string          `json:"ath"`
	Nonce *string          `json:"nonce"`
}

// GetExpirationTime and the rest satisfy jwt.Claims; the claims are
// checked by ParseProof, not by golang-jwt (WithoutClaimsValidation).
func (proofClaims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (proofClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (proofClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (proofClaims) GetIssuer() (string, error)                   { return "", nil }
func (proofClaims) GetSubject() (string, error)                  { return "", nil }
func (proofClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// ParseProof parses a DPoP proof JWT and verifies its signature with the
// public key in its own jwk header (RFC 9449 §4.3 checks 2-7): typ
// dpop+jwt, alg in algs (asymmetric only) and fitting the key, a jwk that
// is a public key, no crit, and jti, htm, htu and iat present with the
// right types. Errors are *Error with Reason Invalid.
func ParseProof(raw string, algs []string) (*Proof, error) {
	if len(raw) > maxProofBytes {
		return nil, fail(Invalid, "the proof has %d bytes, more than %d", len(raw), maxProofBytes)
	}
	var key *publicKey
	var claims proofClaims
	parser := jwt.NewParser(jwt.WithValidMethods(algs), jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	_, err := parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "dpop+jwt") {
			return nil, fmt.Errorf("typ is %q, not dpop+jwt", typ)
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("a crit header; no extension is understood")
		}
		alg := t.Method.Alg()
		if !asymmetric[alg] {
			return nil, fmt.Errorf("alg %s is not asymmetric", alg)
		}
		k, err := parseJWK(t.Header["jwk"])
		if err != nil {
			return nil, err
		}
		if !k.fits(alg) {
			return nil, fmt.Errorf("alg %s does not fit the jwk's key type", alg)
		}
		key = k
		return k.key, nil
	})
	if err != nil {
		return nil, &Error{Reason: Invalid, Err: err}
	}
	p := &Proof{JKT: key.jkt}
	switch {
	case claims.JTI == nil || *claims.JTI == "":
		return nil, fail(Invalid, "the proof has no jti")
	case len(*claims.JTI) > 256:
		return nil, fail(Invalid, "the proof's jti is longer than 256 bytes")
	case claims.HTM == nil || *claims.HTM == "":
		return nil, fail(Invalid, "the proof has no htm")
	case claims.HTU == nil || *claims.HTU == "":
		return nil, fail(Invalid, "the proof has no htu")
	case claims.IAT == nil:
		return nil, fail(Invalid, "the proof has no iat")
	}
	// A JSON number, never a string that holds one.
	rawIAT := []byte(*claims.IAT)
	var iat float64
	err = json.Unmarshal(rawIAT, &iat)
	if len(rawIAT) == 0 || rawIAT[0] < '0' || rawIAT[0] > '9' || err != nil || math.IsNaN(iat) || iat <= 0 || iat > 1e11 {
		return nil, fail(Invalid, "the proof's iat is not a NumericDate")
	}
	sec := int64(iat)
	p.JTI, p.HTM, p.HTU = *claims.JTI, *claims.HTM, *claims.HTU
	p.IAT = time.Unix(sec, int64((iat-float64(sec))*1e9))
	if claims.ATH != nil {
		p.ATH = *claims.ATH
	}
	if claims.Nonce != nil {
		p.Nonce = *claims.Nonce
	}
	return p, nil
}

// TokenHash is the ath of an access token: base64url(SHA-256(token)) (RFC
// 9449 §4.2).
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// equal compares two public strings in constant time anyway: thumbprints
// and hashes are compared where timing should tell nothing.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
