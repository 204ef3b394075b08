package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reload results, the `result` label values of
// jwt_sidecar_config_reloads_total.
const (
	ReloadSuccess = "success"
	ReloadFailure = "failure"
)

// Rules holds the instruments of a CONFIG_FILE policy: reloads, and
// requests per rule. They exist only when a file is in use.
type Rules struct {
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	lastOK      prometheus.Gauge
	rules       *prometheus.CounterVec

	mu    sync.Mutex
	known map[string]bool // rule names with series
}

// NewRules creates the policy instruments and registers them on reg.
func NewRules(reg prometheus.Registerer) *Rules {
	m := &Rules{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "config_reloads_total",
			Help:      "Reloads of CONFIG_FILE by result: success (the new policy is in force) or failure (the file was refused; the running policy stays).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "config_last_reload_success_timestamp_seconds",
			Help:      "Unix time at which the policy in force was loaded from CONFIG_FILE (at start, or by the last successful reload).",
		}),
		// Like prometheus_config_last_reload_successful: an alert can say
		// "the file on disk is refused" for as long as it is, which a
		// counter's increase cannot (a refused file is not retried until
		// it changes again).
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "config_last_reload_successful",
			Help:      "1 when the last load of CONFIG_FILE (at start or by a reload) put it in force, 0 when the last reload was refused and an older policy is running.",
		}),
		rules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "rule_requests_total",
			Help:      "Requests by the CONFIG_FILE rule that applied (default when none matched) and outcome (allowed, public, unauthenticated, forbidden).",
		}, []string{"rule", "outcome"}),
		known: map[string]bool{},
	}
	reg.MustRegister(m.reloads, m.lastSuccess, m.lastOK, m.rules)
	m.reloads.WithLabelValues(ReloadSuccess)
	m.reloads.WithLabelValues(ReloadFailure)
	return m
}

// Loaded records that a policy came into force at t: at start, or by a
// reload (which then also counts as a success).
func (m *Rules) Loaded(t time.Time, reload bool) {
	if reload {
		m.reloads.WithLabelValues(ReloadSuccess).Inc()
	}
	m.lastSuccess.Set(float64(t.UnixNano()) / 1e9)
	m.lastOK.Set(1)
}

// ReloadFailed counts a refused file.
func (m *Rules) ReloadFailed() {
	m.reloads.WithLabelValues(ReloadFailure).Inc()
	m.lastOK.Set(0)
}

// RuleCounter returns the increment of the (rule, outcome) series, which it
// creates at zero.
func (m *Rules) RuleCounter(rule, outcome string) func() {
	m.mu.Lock()
	m.known[rule] = true
	m.mu.Unlock()
	return m.rules.WithLabelValues(rule, outcome).Inc
}

// KeepRules removes the series of every rule not named: after a reload,
// only the rules in force are exported.
func (m *Rules) KeepRules(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for n := range m.known {
		if !keep[n] {
			m.rules.DeletePartialMatch(prometheus.Labels{"rule": n})
			delete(m.known, n)
		}
	}
}

// SourceRemoved drops the key gauges of a source a policy reload removed,
// so that dashboards do not show it as a source that stopped refreshing.
// Its refresh counters stay: they are history.
func (m *Metrics) SourceRemoved(source string) {
	m.keys.DeleteLabelValues(source)
	m.lastRefresh.DeleteLabelValues(source)
}
