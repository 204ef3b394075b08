package verifier

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"unsafe"
)

const cacheShards = 32

// tokenCache remembers what was learnt about a token by the SHA-256 of the
// token: jwt mode's verified claims, introspection mode's active answers.
// It holds at most size entries. Whether an entry still holds is each
// mode's own rule, given as stale: the caller checks an entry it gets, and
// put and drop use the rule to clear dead entries. Sharding keeps the lock
// uncontended on the request path.
type tokenCache[E any] struct {
	shards   [cacheShards]cacheShard[E]
	perShard int
	n        atomic.Int64
}

type cacheShard[E any] struct {
	mu sync.RWMutex
	m  map[[32]byte]E
}

// newTokenCache returns nil for size <= 0: caching off.
func newTokenCache[E any](size int) *tokenCache[E] {
	if size <= 0 {
		return nil
	}
	c := &tokenCache[E]{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]E)
	}
	return c
}

// hashToken is a token's key in a tokenCache. It hashes the string's bytes
// in place: a copy would be the only allocation on the cache-hit path, and
// Sum256 does not keep them.
func hashToken(token string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

func (c *tokenCache[E]) shard(k *[32]byte) *cacheShard[E] { return &c.shards[k[0]%cacheShards] }

// get returns the entry cached for k, stale or not.
func (c *tokenCache[E]) get(k *[32]byte) (E, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	return e, ok
}

// put stores e for k. A full shard first drops its stale entries, then, if
// none was, one arbitrary entry (Go's map order is randomised, so eviction
// is random: an attacker cannot pin entries or force a pathological order).
func (c *tokenCache[E]) put(k *[32]byte, e E, stale func(E) bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok {
		if len(s.m) >= c.perShard {
			c.evict(s, stale)
		}
		c.n.Add(1)
	}
	s.m[*k] = e
}

// evict makes room in a full shard; the caller holds its lock.
func (c *tokenCache[E]) evict(s *cacheShard[E], stale func(E) bool) {
	dropped := 0
	for k, e := range s.m {
		if stale(e) {
			delete(s.m, k)
			dropped++
		}
	}
	if dropped == 0 {
		for k := range s.m {
			delete(s.m, k)
			dropped++
			break
		}
	}
	c.n.Add(-int64(dropped))
}

// drop removes k if its entry is stale, e.g. once its token has expired.
// An entry a concurrent request has put since, still good, stays.
func (c *tokenCache[E]) drop(k *[32]byte, stale func(E) bool) {
	s := c.shard(k)
	s.mu.Lock()
	if e, ok := s.m[*k]; ok && stale(e) {
		delete(s.m, *k)
		c.n.Add(-1)
	}
	s.mu.Unlock()
}

// Len is the number of cached entries, stale ones not yet dropped included.
func (c *tokenCache[E]) Len() int { return int(c.n.Load()) }
