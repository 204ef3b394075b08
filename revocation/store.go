package revocation

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults of Options.
const (
	DefaultRefreshInterval = 10 * time.Second
	DefaultFilePoll        = 2 * time.Second
	DefaultFetchTimeout    = 5 * time.Second
	// staleIntervals is how many refresh intervals may pass without a good
	// fetch before a list counts as stale, when StaleAfter is not set.
	staleIntervals = 6
)

// Results of a fetch, the values of Recorder.Fetch's result.
const (
	FetchOK          = "ok"           // a new list was read and installed
	FetchNotModified = "not_modified" // 304, or a file whose stamp did not change
	FetchFromDisk    = "from_disk"    // the cached list of a previous run, at start
	FetchError       = "error"        // unreachable, a non-200 status, a file that cannot be read
	FetchInvalid     = "invalid"      // a document Parse refused
)

// Recorder receives what the store does, for metrics. Implementations must
// be safe for concurrent use.
type Recorder interface {
	// Fetch counts one attempt to read a source; result is a Fetch* value.
	Fetch(source, result string)
	// Loaded reports the entries a source serves now and when its content
	// was last known good (fetched, confirmed by a 304, or read).
	Loaded(source string, tokens, subjects int, lastSuccess time.Time)
	// Logout counts one back-channel logout request; result is a Logout*
	// value.
	Logout(result string)
}

type nopRecorder struct{}

func (nopRecorder) Fetch(string, string)               {}
func (nopRecorder) Loaded(string, int, int, time.Time) {}
func (nopRecorder) Logout(string)                      {}

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// URL is a list served over HTTP(S) (REVOCATION_LIST_URL), polled every
	// RefreshInterval with conditional requests.
	URL string
	// File is a list on disk (REVOCATION_FILE), e.g. a mounted ConfigMap,
	// re-read when its modification time or size changes.
	File string
	// RefreshInterval is the URL's poll interval (REVOCATION_REFRESH_INTERVAL).
	RefreshInterval time.Duration
	// FilePoll is how often File's stamp is checked.
	FilePoll time.Duration
	// StaleAfter is the age of the last good list after which a source
	// counts as stale (default six intervals). A stale list keeps serving.
	StaleAfter time.Duration
	// CacheDir keeps the URL's last good list (with its ETag) across
	// restarts (JWKS_CACHE_DIR); empty keeps nothing.
	CacheDir string
	// MaxBytes bounds a list document (DefaultMaxBytes when zero).
	MaxBytes int64
	// FetchTimeout bounds one HTTP fetch.
	FetchTimeout time.Duration
	// Client fetches URL; nil means a client of its own.
	Client   *http.Client
	Recorder Recorder
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store holds the revocation lists of every source and answers Revoked
// without locks: a snapshot of immutable lists, swapped atomically.
type Store struct {
	opts    Options
	sources []*source
	snap    atomic.Pointer[snapshot]

	mu    sync.Mutex // serializes installs (builds of a new snapshot)
	local *List      // back-channel logout entries; guarded by mu
}

// snapshot is what a lookup reads: the local list first, then one list per
// source (nil until that source has loaded).
type snapshot struct{ lists []*List }

// New builds a store for the configured sources. Nothing is fetched until
// Refresh or Run.
func New(o Options) (*Store, error) {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.FilePoll <= 0 {
		o.FilePoll = DefaultFilePoll
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = staleIntervals * o.RefreshInterval
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if o.Recorder == nil {
		o.Recorder = nopRecorder{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{opts: o, local: &List{}}
	if o.File != "" {
		s.sources = append(s.sources, newFileSource(s, len(s.sources)+1, o.File))
	}
	if o.URL != "" {
		src, err := newURLSource(s, len(s.sources)+1, o.URL)
		if err != nil {
			return nil, err
		}
		s.sources = append(s.sources, src)
	}
	s.snap.Store(&snapshot{lists: make([]*List, len(s.sources)+1)})
	return s, nil
}

// Revoked reports whether the token with these claims is revoked: its
// (iss, jti) is listed, or its (iss, sub) is listed with a time after its
// iat (a zero iat counts as before any time). It is a few map lookups,
// whatever the lists hold, and allocates nothing. Call it for every request,
// token-cache hits included: a cached verdict may predate the revocation.
func (s *Store) Revoked(iss, jti, sub string, iat time.Time) bool {
	for _, l := range s.snap.Load().lists {
		if l != nil && l.revoked(iss, jti, sub, iat) {
			return true
		}
	}
	return false
}

// install makes l the list of layer i (0 is the local list).
func (s *Store) install(i int, l *List) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.installLocked(i, l)
}

func (s *Store) installLocked(i int, l *List) {
	old := s.snap.Load()
	lists := make([]*List, len(old.lists))
	copy(lists, old.lists)
	lists[i] = l
	s.snap.Store(&snapshot{lists: lists})
}

// AddSubject revokes every token of (iss, sub) issued before before, until
// exp. Back-channel logout uses it; the entry lives in memory (and is lost
// on restart, see docs/revocation.md). It returns how many local subject
// entries are held after expired ones were dropped.
func (s *Store) AddSubject(iss, sub string, before, exp time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.local = s.local.withSubject(subjectKey{iss, sub}, subjectRule{before: before, exp: exp}, s.opts.Now())
	s.installLocked(0, s.local)
	n := len(s.local.subjects)
	s.opts.Recorder.Loaded(localSource, 0, n, s.opts.Now())
	return n
}

// localSource names the back-channel logout entries in metrics and Status.
const localSource = "backchannel"

// Refresh reads every source once, in order, and returns their errors
// joined. A failure keeps the source's last good list. Tests and start-up
// call it; Run calls each source on its own schedule.
func (s *Store) Refresh(ctx context.Context) error {
	var errs []error
	for _, src := range s.sources {
		errs = append(errs, src.refresh(ctx))
	}
	return errors.Join(errs...)
}

// Run loads the cached list of a previous run (URL with CacheDir), then
// keeps every source fresh until ctx ends; it returns nil then. A failing
// source is logged, counted and retried at the next tick; it never stops
// Run and never empties its list.
func (s *Store) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, src := range s.sources {
		g.Go(func() error {
			src.run(ctx)
			return nil
		})
	}
	return g.Wait()
}

// SourceStatus is the state of one source, for /readyz and logs.
type SourceStatus struct {
	Name string
	// Loaded is true once a list was installed (a cached one included).
	Loaded bool
	// LastSuccess is when the content was last known good; Age is now
	// minus LastSuccess.
	LastSuccess time.Time
	Age         time.Duration
	// Stale is true when Age exceeds StaleAfter. The list keeps serving.
	Stale             bool
	Tokens, Subjects  int
	LastError         string
	LastErrorAt       time.Time
	ConsecutiveErrors int
}

// Status reports every source.
func (s *Store) Status() []SourceStatus {
	now := s.opts.Now()
	out := make([]SourceStatus, 0, len(s.sources))
	for _, src := range s.sources {
		out = append(out, src.status(now))
	}
	return out
}

// Ready reports whether every source has loaded a list once (from disk
// counts). Staleness does not make a store unready: every replica reads
// the same list server, so an outage would take all of them out at once.
func (s *Store) Ready() bool {
	for _, src := range s.sources {
		if !src.loaded.Load() {
			return false
		}
	}
	return true
}
