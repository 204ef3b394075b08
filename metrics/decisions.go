package metrics

import "github.com/prometheus/client_golang/prometheus"

// Decisions counts the forward-auth decision listener's answers:
// jwt_sidecar_decisions_total{outcome}. Each decision is also counted in
// jwt_sidecar_requests_total with its reason (one taxonomy); this family
// tells decisions from proxied requests.
type Decisions struct {
	total     *prometheus.CounterVec
	byOutcome map[string]prometheus.Counter
}

// NewDecisions creates jwt_sidecar_decisions_total on reg, with a series
// at zero for every outcome.
func NewDecisions(reg prometheus.Registerer, outcomes []string) *Decisions {
	d := &Decisions{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "decisions_total",
			Help:      "Forward-auth decisions (DECISION_ADDR) by outcome; each is also in jwt_sidecar_requests_total with its reason.",
		}, []string{"outcome"}),
		byOutcome: make(map[string]prometheus.Counter, len(outcomes)),
	}
	reg.MustRegister(d.total)
	for _, o := range outcomes {
		d.byOutcome[o] = d.total.WithLabelValues(o)
	}
	return d
}

// Decision counts one decision.
func (d *Decisions) Decision(outcome string) {
	if c, ok := d.byOutcome[outcome]; ok {
		c.Inc()
		return
	}
	d.total.WithLabelValues(outcome).Inc()
}
