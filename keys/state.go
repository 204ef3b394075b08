package keys

import "time"

// States of a key source or of the keys of a provider: the `state` label
// values of jwt_sidecar_provider_state and the words of /readyz's body.
const (
	// StateNoKeys: nothing loaded yet; tokens cannot be judged.
	StateNoKeys = "no_keys"
	// StateFresh: the last refresh succeeded.
	StateFresh = "fresh"
	// StateStale: keys serve, but the last refresh failed (or they came
	// from JWKS_CACHE_DIR and the origin has not answered since).
	StateStale = "stale"
)

// States lists every state, for metrics that set one and clear the others.
var States = []string{StateNoKeys, StateFresh, StateStale}

// Health is the state of a source, or of every source of a Keys.
type Health struct {
	State string
	Keys  int // usable keys held now
	// Age is how long ago the keys were last confirmed at their origin;
	// 0 when unknown (no keys, or a cache file without a time).
	Age time.Duration
}

// Health says whether the source has keys, and whether they are fresh.
func (s *Source) Health(now time.Time) Health {
	if !s.loaded.Load() {
		return Health{State: StateNoKeys}
	}
	h := Health{State: StateFresh, Keys: s.KeyCount()}
	if at := s.confirmed.Load(); at != 0 {
		h.Age = max(now.Sub(time.Unix(0, at)), 0)
	}
	if s.failing.Load() || s.confirmed.Load() == 0 {
		h.State = StateStale
	}
	return h
}

// Health sums up k's sources: no keys when none has any; stale when one
// has none or serves stale keys; else fresh. Age is the oldest source's.
func (k *Keys) Health(now time.Time) Health {
	out := Health{State: StateFresh}
	none := 0
	for _, s := range k.sources {
		h := s.Health(now)
		out.Keys += h.Keys
		out.Age = max(out.Age, h.Age)
		switch h.State {
		case StateNoKeys:
			none++
			out.State = StateStale
		case StateStale:
			out.State = StateStale
		}
	}
	if none == len(k.sources) {
		return Health{State: StateNoKeys}
	}
	return out
}
