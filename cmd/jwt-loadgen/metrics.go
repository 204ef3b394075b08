package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sidecarmetrics "github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "jwt_loadgen"

// codeError is the code label of a request that got no HTTP response:
// refused, reset, timed out.
const codeError = "error"

// Results of a token fetch, the result label values.
const (
	tokenOK    = "ok"
	tokenError = "error"
)

// durationBuckets are the sidecar's: 1 µs to 10 s, ~1.78x per bucket, so
// the client's view and the sidecar's compare bucket for bucket.
var durationBuckets = sidecarmetrics.DurationBuckets()

// loadMetrics is every instrument of the load generator.
type loadMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	scheduled *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	inFlight  *prometheus.GaugeVec
	tokens    *prometheus.CounterVec
	tokenExp  prometheus.Gauge
}

// newMetrics registers the instruments on reg and creates every series of
// every target, so a dashboard sees zeros rather than gaps from the start.
func newMetrics(reg prometheus.Registerer, targets []string, version string) *loadMetrics {
	m := &loadMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: `Requests answered, by target and HTTP status code; code "error" for transport errors and timeouts.`,
		}, []string{"target", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "End-to-end request duration as the client sees it, from sending to the end of the body.",
			Buckets: durationBuckets,
		}, []string{"target"}),
		scheduled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "scheduled_total",
			Help: "Requests the fixed-rate schedule called for.",
		}, []string{"target"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dropped_total",
			Help: "Scheduled requests not sent because CONCURRENCY requests to the target were in flight.",
		}, []string{"target"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "in_flight",
			Help: "Requests sent and not yet answered.",
		}, []string{"target"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "token_requests_total",
			Help: "Token fetches from TOKEN_URL, by result (ok, error).",
		}, []string{"result"}),
		tokenExp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "token_expiry_timestamp_seconds",
			Help: "When the token in use expires (Unix time); 0 before the first token.",
		}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "The running build.",
	}, []string{"version"})
	reg.MustRegister(m.requests, m.duration, m.scheduled, m.dropped, m.inFlight, m.tokens, m.tokenExp, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo.WithLabelValues(version).Set(1)
	for _, t := range targets {
		for _, code := range []string{"200", codeError} {
			m.requests.WithLabelValues(t, code)
		}
		m.duration.WithLabelValues(t)
		m.scheduled.WithLabelValues(t)
		m.dropped.WithLabelValues(t)
		m.inFlight.WithLabelValues(t)
	}
	m.tokens.WithLabelValues(tokenOK)
	m.tokens.WithLabelValues(tokenError)
	return m
}

// target holds the instruments of one target, resolved once so the request
// path does no label lookups but the code's.
type targetMetrics struct {
	requests  *prometheus.CounterVec
	duration  prometheus.Observer
	scheduled prometheus.Counter
	dropped   prometheus.Counter
	inFlight  prometheus.Gauge
	url       string
}

func (m *loadMetrics) target(url string) targetMetrics {
	return targetMetrics{
		requests:  m.requests,
		duration:  m.duration.WithLabelValues(url),
		scheduled: m.scheduled.WithLabelValues(url),
		dropped:   m.dropped.WithLabelValues(url),
		inFlight:  m.inFlight.WithLabelValues(url),
		url:       url,
	}
}

// answered records one finished request: its code ("error" without a
// response) and how long it took.
func (t targetMetrics) answered(code int, d time.Duration) {
	label := codeError
	if code > 0 {
		label = strconv.Itoa(code)
	}
	t.requests.WithLabelValues(t.url, label).Inc()
	t.duration.Observe(d.Seconds())
}

// token records one token fetch; exp is the new token's expiry on success.
func (m *loadMetrics) token(err error, exp time.Time) {
	if err != nil {
		m.tokens.WithLabelValues(tokenError).Inc()
		return
	}
	m.tokens.WithLabelValues(tokenOK).Inc()
	m.tokenExp.Set(float64(exp.UnixNano()) / 1e9)
}
