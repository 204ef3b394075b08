package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Relay is the key relay's instruments (cmd/jwt-key-relay): its fetches
// from the issuers, the figure an issuer's owner watches, and the
// sidecars' requests it answers, whose ratio to those fetches is the fan-in
// the relay saves. *Relay satisfies keys.KeyRecorder and keys.RelayRecorder.
type Relay struct {
	refreshes *prometheus.CounterVec
	requests  *prometheus.CounterVec
	keys      *prometheus.GaugeVec
	loaded    *prometheus.GaugeVec
}

// NewRelay registers the relay's instruments on reg.
func NewRelay(reg prometheus.Registerer) *Relay {
	r := &Relay{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jwt_key_relay_refreshes_total",
			Help: "Issuer fetches by source, trigger (start, interval, unknown_kid) and result (ok, not_modified, error, invalid, empty, cooldown, from_disk)."},
			[]string{"source", "trigger", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jwt_key_relay_requests_total",
			Help: "Sidecar requests by source, status (200, 304, 400, 404, 405, 503) and cache (hit: served from the keys held; miss: an unknown kid sent the relay to the issuer; none: refused before any lookup)."},
			[]string{"source", "status", "cache"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jwt_key_relay_keys",
			Help: "Usable keys held per source."}, []string{"source"}),
		loaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jwt_key_relay_last_refresh_timestamp_seconds",
			Help: "When each source's keys were last confirmed current (200 or 304, or loaded from the cache directory)."}, []string{"source"}),
	}
	reg.MustRegister(r.refreshes, r.requests, r.keys, r.loaded)
	return r
}

// KeyRefresh counts one fetch of a source from its issuer.
func (r *Relay) KeyRefresh(source, trigger, result string) {
	r.refreshes.WithLabelValues(source, trigger, result).Inc()
}

// KeysLoaded records the keys a source holds and when they were confirmed.
func (r *Relay) KeysLoaded(source string, n int, at time.Time) {
	r.keys.WithLabelValues(source).Set(float64(n))
	r.loaded.WithLabelValues(source).Set(float64(at.Unix()))
}

// RelayRequest counts one sidecar request.
func (r *Relay) RelayRequest(source, status, cache string) {
	r.requests.WithLabelValues(source, status, cache).Inc()
}
