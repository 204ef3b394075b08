package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
)

// keyRing holds the signing keys of serve and their rotation.
//
// With rotation on, the published key set always holds the current key, the
// next key (generated one interval ahead, so verifiers can fetch it before
// any token uses it) and every retired key until the tokens it signed have
// all expired. Time is passed in by the caller, so tests drive rotation with
// their own clock.
type keyRing struct {
	alg string
	ttl time.Duration // how long a retired key stays published

	mu      sync.RWMutex
	current *signingKey
	next    *signingKey // nil when rotation is off
	retired []retiredKey
}

// retiredKey is a key that signs no more; it is published until expires.
type retiredKey struct {
	key     *signingKey
	expires time.Time
}

// newKeyRing starts a ring with first as the current key. With rotating, a
// next key is generated and published at once.
func newKeyRing(first *signingKey, ttl time.Duration, rotating bool) (*keyRing, error) {
	r := &keyRing{alg: first.alg, ttl: ttl, current: first}
	if rotating {
		next, err := r.generate()
		if err != nil {
			return nil, err
		}
		r.next = next
	}
	return r, nil
}

// generate makes a fresh key with the ring's alg.
func (r *keyRing) generate() (*signingKey, error) {
	s, err := generateKey(r.alg)
	if err != nil {
		return nil, err
	}
	return newSigningKey(s, r.alg)
}

// signer returns the key that signs tokens now.
func (r *keyRing) signer() *signingKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// lookup returns the key with kid if the JWKS publishes it at now: the
// current key, the next key, or a retired key whose tokens may still be
// valid. It is on the /introspect path, so it allocates nothing and does
// not prune (published does).
func (r *keyRing) lookup(kid string, now time.Time) (*signingKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.current.kid == kid {
		return r.current, true
	}
	if r.next != nil && r.next.kid == kid {
		return r.next, true
	}
	for _, k := range r.retired {
		if k.key.kid == kid && !now.After(k.expires) {
			return k.key, true
		}
	}
	return nil, false
}

// rotate retires the current key, promotes the next one, and generates and
// publishes a new next key. It returns the new current key.
func (r *keyRing) rotate(now time.Time) (*signingKey, error) {
	// Generate outside the lock: an RSA key takes a while and token requests
	// must not wait for it.
	fresh, err := r.generate()
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil {
		return nil, errors.New("rotate: rotation is off")
	}
	// A token signed by the old key at the last moment expires ttl from now.
	r.retired = append(r.retired, retiredKey{key: r.current, expires: now.Add(r.ttl)})
	r.current, r.next = r.next, fresh
	r.prune(now)
	return r.current, nil
}

// prune drops retired keys whose tokens have all expired. r.mu is held.
func (r *keyRing) prune(now time.Time) {
	kept := r.retired[:0]
	for _, k := range r.retired {
		if !now.After(k.expires) {
			kept = append(kept, k)
		}
	}
	clear(r.retired[len(kept):])
	r.retired = kept
}

// published returns the keys of the JWKS at now: current, next, then the
// retired keys, newest first.
func (r *keyRing) published(now time.Time) []*signingKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prune(now)
	keys := []*signingKey{r.current}
	if r.next != nil {
		keys = append(keys, r.next)
	}
	for i := len(r.retired) - 1; i >= 0; i-- {
		keys = append(keys, r.retired[i].key)
	}
	return keys
}

// jwks returns the public key set at now.
func (r *keyRing) jwks(now time.Time) (jwkset.JWKSMarshal, error) {
	return publicJWKS(r.published(now))
}

// publicJWKS builds the public JWKS of keys.
func publicJWKS(keys []*signingKey) (jwkset.JWKSMarshal, error) {
	set := jwkset.JWKSMarshal{Keys: make([]jwkset.JWKMarshal, 0, len(keys))}
	for _, k := range keys {
		j, err := k.jwk()
		if err != nil {
			return jwkset.JWKSMarshal{}, err
		}
		set.Keys = append(set.Keys, j)
	}
	return set, nil
}
