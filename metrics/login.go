package metrics

import "github.com/prometheus/client_golang/prometheus"

// LoginLabels are browser login's label values, from the login package.
type LoginLabels struct {
	// Events are what a login does: started, completed.
	Events []string
	// Failures are the reasons a login fails.
	Failures []string
	// RefreshOutcomes are the outcomes of a session refresh.
	RefreshOutcomes []string
}

// Logins counts browser logins: jwt_sidecar_logins_total{event},
// jwt_sidecar_login_failures_total{reason} and
// jwt_sidecar_session_refreshes_total{outcome}. Requests refused for want
// of a token or session stay in jwt_sidecar_requests_total, one taxonomy.
type Logins struct {
	events    *prometheus.CounterVec
	failures  *prometheus.CounterVec
	refreshes *prometheus.CounterVec
}

// NewLogins creates the login instruments, every series at zero, and
// registers them on reg.
func NewLogins(reg prometheus.Registerer, labels LoginLabels) *Logins {
	l := &Logins{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "logins_total",
			Help:      "Browser logins by event: started (a browser sent to the identity provider), completed (a callback that set a session).",
		}, []string{"event"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "login_failures_total",
			Help:      "Browser logins that failed, by reason (wrong_state, idp_error, bad_callback, replayed_code, exchange_failed, bad_id_token, bad_nonce, session_too_large, unavailable).",
		}, []string{"reason"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "session_refreshes_total",
			Help:      "Refresh-token grants made to renew a browser session, by outcome (refreshed, failed).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(l.events, l.failures, l.refreshes)
	for _, e := range labels.Events {
		l.events.WithLabelValues(e)
	}
	for _, r := range labels.Failures {
		l.failures.WithLabelValues(r)
	}
	for _, o := range labels.RefreshOutcomes {
		l.refreshes.WithLabelValues(o)
	}
	return l
}

// Event counts one login event.
func (l *Logins) Event(event string) { l.events.WithLabelValues(event).Inc() }

// Failure counts one failed login by reason.
func (l *Logins) Failure(reason string) { l.failures.WithLabelValues(reason).Inc() }

// Refresh counts one session refresh by outcome.
func (l *Logins) Refresh(outcome string) { l.refreshes.WithLabelValues(outcome).Inc() }
