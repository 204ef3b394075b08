package injector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Certificate reload results, the `result` label values.
const (
	ReloadOK    = "ok"
	ReloadError = "error"
)

// Metrics is every instrument of the injector (docs/contract.md names them).
type Metrics struct {
	injections  *prometheus.CounterVec
	failures    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	certReloads *prometheus.CounterVec
	certExpiry  prometheus.Gauge
	buildInfo   *prometheus.GaugeVec
}

// NewMetrics registers the instruments, and the Go and process collectors,
// with reg. main passes a fresh prometheus.NewRegistry().
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "jwt_sidecar_injector"
	m := &Metrics{
		injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "injections_total",
			Help: "Pods the sidecar was injected into (dry runs included).",
		}, []string{"namespace"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "failures_total",
			Help: "Admission requests refused or answered with an HTTP error, by reason.",
		}, []string{"namespace", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "request_duration_seconds",
			Help: "Time to answer one admission request, by outcome (injected, skipped, refused).",
			// 10 µs to 10 s, 1-2-5 per decade: a decision takes well under
			// a millisecond; the API server's webhook timeout is at most
			// 30 s. Exact decimals, so le="0.001" in PromQL matches a bound.
			Buckets: requestBuckets,
		}, []string{"outcome"}),
		certReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "certificate_reloads_total",
			Help: "Loads of TLS_CERT_FILE and TLS_KEY_FILE, by result; an error keeps the previous pair.",
		}, []string{"result"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the serving certificate, as a Unix time.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "build_info",
			Help: "Always 1; the version label says which build runs.",
		}, []string{"version"}),
	}
	reg.MustRegister(m.injections, m.failures, m.duration, m.certReloads, m.certExpiry, m.buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []Outcome{Injected, Skipped, Refused} {
		m.duration.WithLabelValues(string(o))
	}
	for _, r := range []string{ReloadOK, ReloadError} {
		m.certReloads.WithLabelValues(r)
	}
	return m
}

// BuildInfo sets jwt_sidecar_injector_build_info.
func (m *Metrics) BuildInfo(version string) { m.buildInfo.WithLabelValues(version).Set(1) }

// Decision counts one answered request.
func (m *Metrics) Decision(namespace string, o Outcome, r Reason, d time.Duration) {
	switch o {
	case Injected:
		m.injections.WithLabelValues(namespace).Inc()
	case Refused:
		m.failures.WithLabelValues(namespace, string(r)).Inc()
	}
	m.duration.WithLabelValues(string(o)).Observe(d.Seconds())
}

// CertificateLoaded records one load attempt and, on success, the expiry.
func (m *Metrics) CertificateLoaded(err error, notAfter time.Time) {
	if err != nil {
		m.certReloads.WithLabelValues(ReloadError).Inc()
		return
	}
	m.certReloads.WithLabelValues(ReloadOK).Inc()
	m.certExpiry.Set(float64(notAfter.Unix()))
}

// requestBuckets are written out: the injector imports no metrics package
// of the sidecar, and decimal literals print back as themselves.
var requestBuckets = []float64{
	0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005,
	0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10,
}
