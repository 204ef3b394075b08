package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

type memoKey struct{ kid, alg string }

// find returns the set's key for kid, or for an empty kid every key that
// fits alg ([]jwt.VerificationKey). keyfunc does the lookup (kid, and the JWK's own alg and
// use); its answer depends only on this immutable set, kid and alg, so a
// found key is remembered per set. Misses are not, so random kids cannot
// grow the memo.
func (set *keySet) find(ctx context.Context, kid, alg string, token *jwt.Token) (any, error) {
	mk := memoKey{kid: kid, alg: alg}
	if v, ok := set.memo.Load(mk); ok {
		return v, nil
	}
	got, err := set.kf.KeyfuncCtx(ctx)(token)
	switch {
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return nil, err
	case err != nil:
		// keyfunc found the kid but its alg or use does not fit.
		return nil, fmt.Errorf("%w: %w", ErrKeyMismatch, err)
	}
	var out any
	switch got := got.(type) {
	case jwt.VerificationKeySet:
		var fit []jwt.VerificationKey
		for _, key := range got.Keys {
			if keyFits(alg, key) == nil {
				fit = append(fit, key)
			}
		}
		out = fit
	default:
		if err := keyFits(alg, got); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyMismatch, err)
		}
		out = got
	}
	set.memo.Store(mk, out)
	return out, nil
}

// fitting lists the kid-less keys of the type alg needs.
func (set *keySet) fitting(alg string) []jwt.VerificationKey {
	var fit []jwt.VerificationKey
	for _, key := range set.anyKID {
		if keyFits(alg, key) == nil {
			fit = append(fit, key)
		}
	}
	return fit
}

// keyFits checks that key is of the type alg needs, so that an RSA public
// key can never serve as an HMAC secret (RFC 8725 §2.1, §3.1).
func keyFits(alg string, key any) error {
	switch {
	case strings.HasPrefix(alg, "HS"):
		if _, ok := key.([]byte); ok {
			return nil
		}
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		if k, ok := key.(*rsa.PublicKey); ok && k.N.BitLen() >= minRSABits {
			return nil
		}
	case alg == "ES256", alg == "ES384", alg == "ES512":
		if k, ok := key.(*ecdsa.PublicKey); ok && k.Curve == curveFor(alg) {
			return nil
		}
	case alg == "EdDSA":
		if _, ok := key.(ed25519.PublicKey); ok {
			return nil
		}
	}
	return fmt.Errorf("alg %s does not fit a key of type %T", alg, key)
}

func curveFor(alg string) elliptic.Curve {
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	}
	return elliptic.P521()
}

// keySet is one immutable snapshot of a source's keys.
type keySet struct {
	kf keyfunc.Keyfunc
	// anyKID are the keys published without a kid (a PEM file, an HMAC
	// secret, a JWKS entry without one): a kid is only a hint (RFC 7515
	// §4.1.4), so Keys.key tries them for a token whose kid no keyed entry
	// has, as Envoy's jwt_authn does.
	anyKID []any
	memo   sync.Map        // memoKey -> key or []any; see find
	ids    map[string]bool // kid + key fingerprint, to notice withdrawn keys
	n      int
}

// newKeySet builds a snapshot from JWKs, dropping any that cannot verify
// (encryption keys, short RSA keys, unsupported types).
func newKeySet(jwks []jwkset.JWK, log *slog.Logger, source string) (*keySet, error) {
	store := jwkset.NewMemoryStorage()
	ids := map[string]bool{}
	var anyKID []any
	for _, j := range jwks {
		m := j.Marshal()
		if m.USE != "" && m.USE != jwkset.UseSig {
			log.Warn("skipping a key not meant for signatures", "source", source, "kid", m.KID, "use", m.USE)
			continue
		}
		id, err := fingerprint(j.Key())
		if err != nil {
			log.Warn("skipping an unusable key", "source", source, "kid", m.KID, "error", err)
			continue
		}
		if err := store.KeyWrite(context.Background(), j); err != nil {
			return nil, fmt.Errorf("store key: %w", err)
		}
		ids[m.KID+"|"+id] = true
		if m.KID == "" {
			anyKID = append(anyKID, j.Key())
		}
	}
	if len(ids) == 0 {
		return nil, errNoUsableKey
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		return nil, fmt.Errorf("keyfunc: %w", err)
	}
	return &keySet{kf: kf, anyKID: anyKID, ids: ids, n: len(ids)}, nil
}

var errNoUsableKey = errors.New("no usable signing key in the set")

// fingerprint identifies a public key by value and rejects keys that can
// never verify a token here.
func fingerprint(key any) (string, error) {
	switch k := key.(type) {
	case []byte:
		if len(k) < 32 {
			return "", errors.New("HMAC secret shorter than 32 bytes")
		}
		sum := sha256.Sum256(k)
		return "oct:" + hex.EncodeToString(sum[:8]), nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA key of %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return "", fmt.Errorf("unsupported key type %T", key)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// parseJWKS turns a JWK Set document into JWKs. Keys that do not parse are
// skipped (logged), as one odd key must not hide the others.
func parseJWKS(raw []byte, log *slog.Logger, source string) ([]jwkset.JWK, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`not a JWK Set: no "keys" member`)
	}
	out := make([]jwkset.JWK, 0, len(doc.Keys))
	for _, rawKey := range doc.Keys {
		var m jwkset.JWKMarshal
		if err := json.Unmarshal(rawKey, &m); err != nil {
			log.Warn("skipping a key that does not parse", "source", source, "error", err)
			continue
		}
		// Private members are never read from a key source: a JWKS is public.
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			log.Warn("skipping a key that does not parse", "source", source, "kid", m.KID, "error", err)
			continue
		}
		out = append(out, j)
	}
	return out, nil
}
