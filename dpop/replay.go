package dpop

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Replay remembers the (key, jti) of accepted proofs until each proof is
// stale (RFC 9449 §11.1). It is bounded: entries are kept in arrival order,
// expired ones are dropped first, and when the cache is full of live ones
// the oldest is evicted (and counted), which narrows the replay window for
// that proof rather than refusing every client. Size it to at least the
// proofs accepted within MaxAge+Leeway: at 1,000 proofs per second and a
// 65 s window, 65,000 entries (about 60 bytes each).
type Replay struct {
	mu        sync.Mutex
	max       int
	until     map[[16]byte]time.Time
	order     [][16]byte // a ring of keys in arrival order
	head, n   int
	evictions uint64
}

// NewReplay returns a cache of at most max entries.
func NewReplay(max int) *Replay {
	return &Replay{max: max, until: make(map[[16]byte]time.Time), order: make([][16]byte, max)}
}

// replayKey hashes (jkt, jti) to a fixed size, so that memory per entry
// does not depend on what clients send.
func replayKey(jkt, jti string) [16]byte {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// Add records (jkt, jti) until the deadline and returns true, or returns
// false and changes nothing when it is held and live at now. Check and
// insert are one step, so two concurrent uses of one proof cannot both
// pass.
func (r *Replay) Add(jkt, jti string, until, now time.Time) bool {
	k := replayKey(jkt, jti)
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.until[k]; ok && !now.After(u) {
		return false
	}
	// Drop expired entries from the old end.
	for r.n > 0 {
		old := r.order[r.head]
		if u, ok := r.until[old]; ok && !now.After(u) {
			break
		}
		r.pop()
	}
	if r.n == r.max {
		r.pop()
		r.evictions++
	}
	if _, ok := r.until[k]; !ok {
		r.order[(r.head+r.n)%r.max] = k
		r.n++
	}
	r.until[k] = until
	return true
}

// pop removes the oldest entry. r.mu is held.
func (r *Replay) pop() {
	delete(r.until, r.order[r.head])
	r.head = (r.head + 1) % r.max
	r.n--
}

// Len is the number of entries held; Evictions counts live entries pushed
// out by a full cache (a metric: alert when it grows).
func (r *Replay) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Evictions is the number of live entries evicted because the cache was full.
func (r *Replay) Evictions() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.evictions
}
