package verifier

import (
	"sync"
	"sync/atomic"
	"time"
)

// introspectionCache remembers active introspection answers by the SHA-256
// of the token, each until its own deadline: min(INTROSPECTION_CACHE_TTL,
// exp). It holds at most size entries. Unlike tokenCache, whose entries live
// until the key set changes, every entry here expires on its own, which is
// the whole point: a revoked token passes for at most the TTL.
type introspectionCache struct {
	shards   [cacheShards]introspectionShard
	perShard int
	n        atomic.Int64
}

type introspectionShard struct {
	mu sync.RWMutex
	m  map[[32]byte]introspectionEntry
}

type introspectionEntry struct {
	claims *Claims
	until  time.Time
}

// newIntrospectionCache returns nil for size <= 0: caching off.
func newIntrospectionCache(size int) *introspectionCache {
	if size <= 0 {
		return nil
	}
	c := &introspectionCache{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]introspectionEntry)
	}
	return c
}

func (c *introspectionCache) shard(k *[32]byte) *introspectionShard {
	return &c.shards[k[0]%cacheShards]
}

// get returns the claims cached for k if their deadline is after now; an
// entry past it is dropped.
func (c *introspectionCache) get(k *[32]byte, now time.Time) (*Claims, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) {
		s.mu.Lock()
		if cur, ok := s.m[*k]; ok && cur.until.Equal(e.until) {
			delete(s.m, *k)
			c.n.Add(-1)
		}
		s.mu.Unlock()
		return nil, false
	}
	return e.claims, true
}

// put stores claims for k until the given deadline. A full shard first
// drops the entries that have expired by now, then, if none had, one
// arbitrary entry (Go's map order is randomised: an attacker cannot pin
// entries).
func (c *introspectionCache) put(k *[32]byte, claims *Claims, until, now time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok {
		if len(s.m) >= c.perShard {
			c.evict(s, now)
		}
		c.n.Add(1)
	}
	s.m[*k] = introspectionEntry{claims: claims, until: until}
}

// evict makes room in a full shard; the caller holds its lock.
func (c *introspectionCache) evict(s *introspectionShard, now time.Time) {
	dropped := 0
	for k, e := range s.m {
		if !now.Before(e.until) {
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

// Len is the number of cached answers, expired ones not yet dropped included.
func (c *introspectionCache) Len() int { return int(c.n.Load()) }
