package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RevocationLabels are revocation's label values; main passes its
// constants. Logout results have their series from the first scrape; fetch
// series appear with each source's first read, which happens at start.
type RevocationLabels struct {
	// FetchResults are the results of one read of a source.
	FetchResults []string
	// LogoutResults are the results of one back-channel logout request.
	LogoutResults []string
}

// Revocation is the revocation list's instruments. *Revocation satisfies
// revocation.Recorder. The list's age and staleness are computed at scrape
// time, so an alert on them needs no request to have happened.
type Revocation struct {
	fetches *prometheus.CounterVec
	logouts *prometheus.CounterVec
	entries *prometheus.Desc
	last    *prometheus.Desc
	age     *prometheus.Desc
	stale   *prometheus.Desc
	after   time.Duration
	now     func() time.Time

	mu     sync.Mutex
	loaded map[string]loadedList
}

type loadedList struct {
	tokens, subjects int
	last             time.Time
}

// NewRevocation registers the revocation instruments on reg. staleAfter is
// REVOCATION_STALE_AFTER.
func NewRevocation(reg prometheus.Registerer, labels RevocationLabels, staleAfter time.Duration) *Revocation {
	r := &Revocation{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "revocation_fetches_total",
			Help:      "Reads of a revocation list source by result (ok, not_modified, from_disk, error, invalid).",
		}, []string{"source", "result"}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "backchannel_logouts_total",
			Help:      "OpenID Connect back-channel logout requests by result (ok, invalid, replayed, unsupported).",
		}, []string{"result"}),
		entries: prometheus.NewDesc(namespace+"_revocation_entries",
			"Revocation entries served now, by source and kind (token, subject).", []string{"source", "kind"}, nil),
		last: prometheus.NewDesc(namespace+"_revocation_last_success_timestamp_seconds",
			"When the source's list was last known good (a 200, a 304, an unchanged file).", []string{"source"}, nil),
		age: prometheus.NewDesc(namespace+"_revocation_list_age_seconds",
			"Seconds since the source's list was last known good, at scrape time.", []string{"source"}, nil),
		stale: prometheus.NewDesc(namespace+"_revocation_list_stale",
			"1 when the source's list is older than REVOCATION_STALE_AFTER; it keeps serving.", []string{"source"}, nil),
		after:  staleAfter,
		now:    time.Now,
		loaded: map[string]loadedList{},
	}
	for _, res := range labels.LogoutResults {
		r.logouts.WithLabelValues(res)
	}
	reg.MustRegister(r.fetches, r.logouts, r)
	return r
}

// Fetch counts one read of a source.
func (r *Revocation) Fetch(source, result string) { r.fetches.WithLabelValues(source, result).Inc() }

// Logout counts one back-channel logout request.
func (r *Revocation) Logout(result string) { r.logouts.WithLabelValues(result).Inc() }

// Loaded records what a source serves now.
func (r *Revocation) Loaded(source string, tokens, subjects int, last time.Time) {
	r.mu.Lock()
	r.loaded[source] = loadedList{tokens: tokens, subjects: subjects, last: last}
	r.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (r *Revocation) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.entries
	ch <- r.last
	ch <- r.age
	ch <- r.stale
}

// Collect implements prometheus.Collector.
func (r *Revocation) Collect(ch chan<- prometheus.Metric) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for src, l := range r.loaded {
		ch <- prometheus.MustNewConstMetric(r.entries, prometheus.GaugeValue, float64(l.tokens), src, "token")
		ch <- prometheus.MustNewConstMetric(r.entries, prometheus.GaugeValue, float64(l.subjects), src, "subject")
		if l.last.IsZero() {
			continue
		}
		age := now.Sub(l.last)
		stale := 0.0
		if r.after > 0 && age > r.after {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(r.last, prometheus.GaugeValue, float64(l.last.UnixNano())/1e9, src)
		ch <- prometheus.MustNewConstMetric(r.age, prometheus.GaugeValue, age.Seconds(), src)
		ch <- prometheus.MustNewConstMetric(r.stale, prometheus.GaugeValue, stale, src)
	}
}

// DPoPReplay exports the DPoP replay cache: its size, and the live entries
// a full cache evicted (each shortens one proof's replay window; alert on
// them and raise DPOP_REPLAY_CACHE_SIZE).
func DPoPReplay(reg prometheus.Registerer, entries func() int, evictions func() uint64) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "dpop_replay_cache_entries",
			Help:      "DPoP proof jtis remembered against replay.",
		}, func() float64 { return float64(entries()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "dpop_replay_cache_evictions_total",
			Help:      "Live DPoP jtis evicted by a full replay cache.",
		}, func() float64 { return float64(evictions()) }),
	)
}
