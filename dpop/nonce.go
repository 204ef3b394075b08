package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// NonceSource makes and checks server nonces (RFC 9449 §8) without state:
// a nonce is its issue time and an HMAC of it, valid for Lifetime. Replicas
// that share the secret accept each other's nonces; with a random secret
// per process a client that moves to another replica is asked for a new
// nonce once (a 401 with use_dpop_nonce and a DPoP-Nonce header).
type NonceSource struct {
	secret   []byte
	lifetime time.Duration
}

// DefaultNonceLifetime is how long a server nonce is valid when nothing
// else is configured: long enough that a client fetches one rarely, short
// enough that a captured proof with it is soon useless.
const DefaultNonceLifetime = 5 * time.Minute

// NewNonceSource uses secret (at least 32 bytes), or a random one when it
// is nil; nonces live for lifetime.
func NewNonceSource(secret []byte, lifetime time.Duration) (*NonceSource, error) {
	if secret == nil {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret) // never fails (crypto/rand)
	}
	if len(secret) < 32 {
		return nil, errors.New("the DPoP nonce secret must have at least 32 bytes")
	}
	if lifetime <= 0 {
		return nil, errors.New("the DPoP nonce lifetime must be positive")
	}
	return &NonceSource{secret: secret, lifetime: lifetime}, nil
}

// New returns a fresh nonce, for the DPoP-Nonce response header.
func (s *NonceSource) New(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	copy(b[8:], s.mac(b[:8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Valid reports whether nonce was made by New (with this secret) within the
// lifetime before now.
func (s *NonceSource) Valid(nonce string, now time.Time) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(b) != 8+16 || !hmac.Equal(b[8:], s.mac(b[:8])) {
		return false
	}
	at := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return !at.After(now.Add(time.Second)) && now.Sub(at) <= s.lifetime
}

func (s *NonceSource) mac(msg []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write(msg)
	return m.Sum(nil)[:16]
}
