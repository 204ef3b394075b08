package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Providers holds the state of each provider's keys: whether it has keys
// yet, and whether they are fresh or stale. A provider that a reload added
// while its issuer is down shows here (and in /readyz's body) without
// making the pod unready.
type Providers struct {
	state *prometheus.GaugeVec
	age   *prometheus.GaugeVec

	mu     sync.Mutex
	states []string
	known  map[string]bool // providers with series
}

// NewProviders creates the provider instruments and registers them on reg.
// states are every state a provider can be in (keys.States, plus the ones
// of providers without keys), one series each, 1 for the current one.
func NewProviders(reg prometheus.Registerer, states []string) *Providers {
	m := &Providers{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "provider_state",
			Help:      "1 for the state each provider's keys are in, 0 for the others: no_keys (nothing loaded yet: its routes answer 503), fresh (the last refresh succeeded), stale (keys serve but the last refresh failed), introspection (no keys: the token service decides).",
		}, []string{"provider", "state"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "provider_keys_age_seconds",
			Help:      "Seconds since each provider's keys were last confirmed at their origin (its oldest source's); absent while it has none.",
		}, []string{"provider"}),
		states: states,
		known:  map[string]bool{},
	}
	reg.MustRegister(m.state, m.age)
	return m
}

// Set records provider's state; age < 0 means unknown (no keys).
func (m *Providers) Set(provider, state string, age float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.known[provider] = true
	for _, s := range m.states {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(provider, s).Set(v)
	}
	if age < 0 {
		m.age.DeleteLabelValues(provider)
		return
	}
	m.age.WithLabelValues(provider).Set(age)
}

// Keep drops the series of providers not in names (removed by a reload).
func (m *Providers) Keep(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	for p := range m.known {
		if keep[p] {
			continue
		}
		delete(m.known, p)
		m.state.DeletePartialMatch(prometheus.Labels{"provider": p})
		m.age.DeleteLabelValues(p)
	}
}
