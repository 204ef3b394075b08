package main

import (
	"sync"
	"time"
)

// sweepInterval is how often an expirySet drops entries that have passed
// their deadline (on the next add, so an idle set costs nothing).
const sweepInterval = time.Minute

// expirySet remembers keys until a deadline each and then forgets them: the
// revoked tokens until their exp, and the jwt-bearer assertions already used
// until their exp plus the leeway. A token past its deadline is refused for
// that reason anyway, so forgetting it is safe, and memory is bounded by the
// entries live at once rather than by everything ever seen.
type expirySet[K comparable] struct {
	mu        sync.RWMutex
	until     map[K]time.Time
	nextSweep time.Time
}

func newExpirySet[K comparable]() *expirySet[K] {
	return &expirySet[K]{until: make(map[K]time.Time)}
}

// add remembers k until the deadline. It returns false and changes nothing
// when k is already remembered at now, so check-and-insert is one atomic
// step (two concurrent replays of one assertion cannot both pass).
func (s *expirySet[K]) add(k K, until, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	if u, ok := s.until[k]; ok && !now.After(u) {
		return false
	}
	if !now.After(until) {
		s.until[k] = until
	}
	return true
}

// contains reports whether k is remembered at now.
func (s *expirySet[K]) contains(k K, now time.Time) bool {
	s.mu.RLock()
	u, ok := s.until[k]
	s.mu.RUnlock()
	return ok && !now.After(u)
}

// len is the number of entries held, expired ones not yet swept included.
func (s *expirySet[K]) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.until)
}

// sweep drops expired entries at most once per sweepInterval. s.mu is held.
func (s *expirySet[K]) sweep(now time.Time) {
	if now.Before(s.nextSweep) {
		return
	}
	for k, u := range s.until {
		if now.After(u) {
			delete(s.until, k)
		}
	}
	s.nextSweep = now.Add(sweepInterval)
}
