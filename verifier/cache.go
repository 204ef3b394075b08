package verifier

import (
	"sync"
	"sync/atomic"
)

const cacheShards = 32

// tokenCache remembers verified tokens by the SHA-256 of the token, so a
// repeated token costs no signature check. It holds at most size entries;
// exp and nbf are checked again on every hit by the caller. Sharding keeps
// the lock uncontended on the request path.
type tokenCache struct {
	shards   [cacheShards]cacheShard
	perShard int
	n        atomic.Int64
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[32]byte]cacheEntry
}

type cacheEntry struct {
	claims *Claims
	epoch  uint64
}

// newTokenCache returns nil for size <= 0: caching off.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	c := &tokenCache{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(k *[32]byte) *cacheShard { return &c.shards[k[0]%cacheShards] }

// get returns the claims cached for k under epoch.
func (c *tokenCache) get(k *[32]byte, epoch uint64) (*Claims, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok || e.epoch != epoch {
		return nil, false
	}
	return e.claims, true
}

// put stores claims for k, evicting an arbitrary entry when the shard is
// full (Go's map order is randomised, so eviction is random: an attacker
// cannot pin entries or force a pathological order).
func (c *tokenCache) put(k *[32]byte, claims *Claims, epoch uint64) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok {
		if len(s.m) >= c.perShard {
			for old := range s.m {
				delete(s.m, old)
				c.n.Add(-1)
				break
			}
		}
		c.n.Add(1)
	}
	s.m[*k] = cacheEntry{claims: claims, epoch: epoch}
}

// drop removes k, e.g. once its token has expired.
func (c *tokenCache) drop(k *[32]byte) {
	s := c.shard(k)
	s.mu.Lock()
	if _, ok := s.m[*k]; ok {
		delete(s.m, *k)
		c.n.Add(-1)
	}
	s.mu.Unlock()
}

// Len is the number of cached tokens.
func (c *tokenCache) Len() int { return int(c.n.Load()) }
