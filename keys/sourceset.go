package keys

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// SourceSet runs the key sources of a policy that can be replaced while the
// process runs (CONFIG_FILE reloads). A source whose definition did not
// change is kept, with its cached keys and its refresh loop; a new one
// starts; one the new policy no longer names stops. Requests still using the
// old policy keep reading the stopped source's cached keys.
type SourceSet struct {
	env     *keyEnv
	mu      sync.Mutex
	entries map[string]*setEntry // by Definition
	wake    chan struct{}
	running atomic.Int64
	applied bool // guarded by mu: the first Apply (the start) has happened
}

type setEntry struct {
	src     *Source
	started bool
	cancel  context.CancelFunc
	// gates: the set is not Ready until this source has keys. Every source
	// of the start gates; one a reload adds to a ready set does not, so a
	// provider whose issuer is down cannot take a serving pod out of its
	// Service (every replica reads the same file and would go at once).
	gates bool
}

// NewSourceSet returns an empty set whose sources share the key policy,
// telemetry and logger given (those of every Keys built over them).
func NewSourceSet(opts KeyOptions, rec KeyRecorder, log *slog.Logger) *SourceSet {
	return &SourceSet{env: newKeyEnv(opts, rec, log), entries: map[string]*setEntry{}, wake: make(chan struct{}, 1)}
}

// Plan returns, for each wanted source, the instance to use: the one in the
// set with the same definition, else the first wanted source with that
// definition (so providers that name the same source share it). It changes
// nothing: a policy that then fails to build leaves the set as it was.
func (s *SourceSet) Plan(wanted []*Source) []*Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Source, len(wanted))
	fresh := map[string]*Source{}
	for i, w := range wanted {
		switch e, f := s.entries[w.def], fresh[w.def]; {
		case e != nil:
			out[i] = e.src
		case f != nil:
			out[i] = f
		default:
			if w.env == nil {
				w.env = s.env
			}
			fresh[w.def] = w
			out[i] = w
		}
	}
	return out
}

// Apply makes sources (instances returned by Plan) the running set: those
// not yet running start once Run sees them, and those not listed stop.
func (s *SourceSet) Apply(sources []*Source) {
	s.mu.Lock()
	gates := !s.applied || !s.readyLocked()
	s.applied = true
	keep := map[string]bool{}
	for _, src := range sources {
		keep[src.def] = true
		if _, ok := s.entries[src.def]; !ok {
			s.entries[src.def] = &setEntry{src: src, gates: gates}
		}
	}
	var removed []string
	for def, e := range s.entries {
		if keep[def] {
			continue
		}
		if e.cancel != nil {
			e.cancel()
		}
		delete(s.entries, def)
		removed = append(removed, e.src.name)
	}
	s.mu.Unlock()
	// A removed source's gauges would otherwise stay at their last values
	// and look like a source that stopped refreshing.
	if f, ok := s.env.rec.(interface{ SourceRemoved(source string) }); ok {
		for _, name := range removed {
			if !s.hasName(name) {
				f.SourceRemoved(name)
			}
		}
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run starts and stops the sources' refresh loops as Apply asks until ctx
// ends, then stops them all, waits for them, and returns nil.
func (s *SourceSet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s.mu.Lock()
		for _, e := range s.entries {
			if e.started {
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			e.started, e.cancel = true, cancel
			src := e.src
			s.running.Add(1)
			wg.Go(func() {
				defer s.running.Add(-1)
				src.run(sctx)
			})
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
	}
}

// hasName reports whether a source of the set is called name (another
// definition may share a name, e.g. the same URL for another issuer).
func (s *SourceSet) hasName(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.src.name == name {
			return true
		}
	}
	return false
}

// Ready reports whether every source of the set has loaded keys at least
// once, except those a reload added while the set was ready: they do not
// make a ready set unready (see setEntry.gates).
func (s *SourceSet) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyLocked()
}

func (s *SourceSet) readyLocked() bool {
	for _, e := range s.entries {
		if e.gates && !e.src.loaded.Load() {
			return false
		}
	}
	return true
}

// Len is the number of sources in the set.
func (s *SourceSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Running is the number of refresh loops still running (a static source's
// ends after its one load), for tests that check a removed source stopped.
func (s *SourceSet) Running() int { return int(s.running.Load()) }

// Loaded reports whether src has loaded keys at least once.
func (src *Source) Loaded() bool { return src.loaded.Load() }
