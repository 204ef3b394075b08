// Package metrics holds jwt-sidecar's Prometheus instruments. It imports no
// other package of the project: the proxy and the verifier declare the small
// interfaces they need, and *Metrics satisfies them.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "jwt_sidecar"

// Labels are the label values whose series exist from the first scrape, so
// dashboards see zeros, not gaps. The packages that decide own them (the
// verifier's taxonomy, the proxy's upstream failures); main passes them
// here, and this package repeats none of them.
type Labels struct {
	// Passed are the outcomes of requests let through (no reason).
	Passed []string
	// Refusals maps every refusal reason to its outcome.
	Refusals map[string]string
	// Modes are the verification modes.
	Modes []string
	// UpstreamErrors are the kinds of upstream failure.
	UpstreamErrors []string
	// SkewClaims are the claims whose check may pass only thanks to skew.
	SkewClaims []string
	// IntrospectionResults are the results of one call to a token service.
	IntrospectionResults []string
}

// durationBuckets: see DurationBuckets.
var durationBuckets = DurationBuckets()

// Histogram kinds of the latency histograms (METRICS_HISTOGRAMS).
const (
	// HistogramsClassic: the 29 fixed buckets, every exposition format.
	HistogramsClassic = "classic"
	// HistogramsNative: Prometheus native histograms only: buckets
	// at most 10% wide from the microseconds to the seconds, at no fixed
	// cost per bucket; scraped with the protobuf format only (the text
	// format then has _count and _sum alone).
	HistogramsNative = "native"
	// HistogramsBoth: both, while dashboards move to native histograms.
	HistogramsBoth = "both"
)

// Options are the choices of how the instruments are exposed.
type Options struct {
	// Histograms is one of the Histograms* kinds; empty means classic.
	Histograms string
}

// latencyOpts are the bucket settings of a latency histogram.
func (o Options) latencyOpts(h prometheus.HistogramOpts) prometheus.HistogramOpts {
	if o.Histograms != HistogramsNative {
		h.Buckets = durationBuckets
	}
	if o.Histograms == HistogramsNative || o.Histograms == HistogramsBoth {
		// Factor 1.1 is schema 3 (2^(1/8) ≈ 1.09 per bucket). At most
		// 160 buckets are kept (1 µs to 10 s is ~186 at full
		// resolution): past that the resolution halves, and it is reset
		// after an hour.
		h.NativeHistogramBucketFactor = 1.1
		h.NativeHistogramMaxBucketNumber = 160
		h.NativeHistogramMinResetDuration = time.Hour
	}
	return h
}

type outcomeReason struct{ outcome, reason string }

// Metrics is every instrument of the sidecar.
type Metrics struct {
	reg           prometheus.Registerer
	labels        Labels
	requests      *prometheus.CounterVec
	requestByKey  map[outcomeReason]prometheus.Counter
	verification  *prometheus.HistogramVec
	verifyByMode  map[string]prometheus.Observer
	upstream      prometheus.Histogram
	upstreamErrs  *prometheus.CounterVec
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	tokenAge      prometheus.Histogram
	skewAccepted  *prometheus.CounterVec
	keyRefreshes  *prometheus.CounterVec
	keys          *prometheus.GaugeVec
	lastRefresh   *prometheus.GaugeVec
	buildInfo     *prometheus.GaugeVec
	internalFault prometheus.Counter
	introspects   *prometheus.CounterVec
}

// New creates the instruments and registers them, with the Go and process
// collectors, on reg. main passes a fresh prometheus.NewRegistry(), never the
// global one. It is long because it is a list: one declaration per
// instrument, read top to bottom like the exposition.
func New(reg prometheus.Registerer, labels Labels) *Metrics {
	return NewWithOptions(reg, labels, Options{})
}

// NewWithOptions is New with the exposition choices of o.
func NewWithOptions(reg prometheus.Registerer, labels Labels, o Options) *Metrics {
	m := &Metrics{
		reg:    reg,
		labels: labels,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "Requests by outcome (allowed, public, unauthenticated, forbidden, unavailable) and refusal reason.",
		}, []string{"outcome", "reason"}),
		verification: prometheus.NewHistogramVec(o.latencyOpts(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "verification_duration_seconds",
			Help:      "Time to authenticate one request: local JWT verification (mode=jwt) or an RFC 7662 round trip (mode=introspection).",
		}), []string{"mode"}),
		upstream: prometheus.NewHistogram(o.latencyOpts(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "upstream_duration_seconds",
			Help:      "Time from forwarding a request to receiving the upstream's response headers.",
		})),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "upstream_errors_total",
			Help:      "Forwarded requests that got no upstream response, by kind (timeout, unreachable, canceled).",
		}, []string{"kind"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "token_cache_hits_total",
			Help:      "Tokens found in the verified-token cache (no signature check needed).",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "token_cache_misses_total",
			Help:      "Tokens not in the verified-token cache (signature checked).",
		}),
		tokenAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "token_age_seconds",
			Help:      "now - iat of accepted tokens (clock-skew telemetry; a token from the future counts as 0).",
			Buckets:   DecimalBuckets(0.01, 86400, 24),
		}),
		skewAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "clock_skew_accepted_total",
			Help:      "Tokens accepted only thanks to CLOCK_SKEW, by the claim (exp, nbf, iat) that needed it.",
		}, []string{"claim"}),
		keyRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "key_refreshes_total",
			Help:      "Key source refreshes by source, trigger (start, interval, unknown_kid, file_change) and result (ok, not_modified, error, invalid, empty, cooldown, from_disk).",
		}, []string{"source", "trigger", "result"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "keys",
			Help:      "Usable verification keys held per key source.",
		}, []string{"source"}),
		lastRefresh: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "key_last_refresh_timestamp_seconds",
			Help:      "Unix time of the last successful load of each key source.",
		}, []string{"source"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "build_info",
			Help:      "Always 1; the version label says which build is running.",
		}, []string{"version"}),
		internalFault: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "internal_errors_total",
			Help:      "Requests answered 500 because of a fault in the sidecar itself.",
		}),
		introspects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "introspection_requests_total",
			Help:      "Calls to the RFC 7662 token service (AUTH_MODE=introspection) by result (active, inactive, timeout, error, bad_response).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.requests, m.verification, m.upstream, m.upstreamErrs,
		m.cacheHits, m.cacheMisses, m.tokenAge, m.skewAccepted,
		m.keyRefreshes, m.keys, m.lastRefresh, m.buildInfo, m.internalFault, m.introspects,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Create every series up front and keep the children, so the request
	// path does no label hashing and dashboards see zeros, not gaps.
	m.requestByKey = make(map[outcomeReason]prometheus.Counter)
	add := func(outcome, reason string) {
		m.requestByKey[outcomeReason{outcome, reason}] = m.requests.WithLabelValues(outcome, reason)
	}
	for _, o := range labels.Passed {
		add(o, "")
	}
	for r, o := range labels.Refusals {
		add(o, r)
	}
	m.verifyByMode = make(map[string]prometheus.Observer, len(labels.Modes))
	for _, mode := range labels.Modes {
		m.verifyByMode[mode] = m.verification.WithLabelValues(mode)
	}
	for _, k := range labels.UpstreamErrors {
		m.upstreamErrs.WithLabelValues(k)
	}
	for _, c := range labels.SkewClaims {
		m.skewAccepted.WithLabelValues(c)
	}
	return m
}

// IntrospectionMode creates the series only introspection mode can move:
// every introspection result. A jwt-mode sidecar never calls a token
// service, so they are created here rather than in New. Call it before
// serving.
func (m *Metrics) IntrospectionMode() {
	for _, r := range m.labels.IntrospectionResults {
		m.introspects.WithLabelValues(r)
	}
}

// Introspection counts one call to the token service by its result.
func (m *Metrics) Introspection(result string) { m.introspects.WithLabelValues(result).Inc() }

// Request counts one request by outcome and reason.
func (m *Metrics) Request(outcome, reason string) {
	if c, ok := m.requestByKey[outcomeReason{outcome, reason}]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(outcome, reason).Inc()
}

// Verification observes the time one authentication took in mode.
func (m *Metrics) Verification(mode string, d time.Duration) {
	if o, ok := m.verifyByMode[mode]; ok {
		o.Observe(d.Seconds())
		return
	}
	m.verification.WithLabelValues(mode).Observe(d.Seconds())
}

// Upstream observes the time the upstream took to answer with headers.
func (m *Metrics) Upstream(d time.Duration) { m.upstream.Observe(d.Seconds()) }

// VerificationInTrace is Verification with the request's sampled trace as
// the observation's exemplar, so a slow bucket links to a trace.
func (m *Metrics) VerificationInTrace(mode string, d time.Duration, traceID string) {
	o, ok := m.verifyByMode[mode]
	if !ok {
		o = m.verification.WithLabelValues(mode)
	}
	observeInTrace(o, d, traceID)
}

// UpstreamInTrace is Upstream with the request's sampled trace as the
// observation's exemplar.
func (m *Metrics) UpstreamInTrace(d time.Duration, traceID string) {
	observeInTrace(m.upstream, d, traceID)
}

// observeInTrace observes d with a trace_id exemplar (the label name
// Grafana and the OpenMetrics examples use).
func observeInTrace(o prometheus.Observer, d time.Duration, traceID string) {
	if eo, ok := o.(prometheus.ExemplarObserver); ok {
		eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": traceID})
		return
	}
	o.Observe(d.Seconds())
}

// UpstreamError counts a forwarded request that got no response.
func (m *Metrics) UpstreamError(kind string) { m.upstreamErrs.WithLabelValues(kind).Inc() }

// InternalError counts a request answered 500 by the sidecar's own fault.
func (m *Metrics) InternalError() { m.internalFault.Inc() }

// TokenCache counts a lookup in the verified-token cache.
func (m *Metrics) TokenCache(hit bool) {
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// TokenCacheEntries exports n, read at each scrape, as the number of
// verified tokens cached.
func (m *Metrics) TokenCacheEntries(n func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "token_cache_entries",
		Help:      "Verified tokens currently cached.",
	}, func() float64 { return float64(n()) }))
}

// TokenAge observes now - iat for an accepted token.
func (m *Metrics) TokenAge(d time.Duration) {
	if d < 0 {
		d = 0
	}
	m.tokenAge.Observe(d.Seconds())
}

// SkewAccepted counts a token accepted only thanks to CLOCK_SKEW on claim.
func (m *Metrics) SkewAccepted(claim string) { m.skewAccepted.WithLabelValues(claim).Inc() }

// KeyRefresh counts one refresh attempt of a key source.
func (m *Metrics) KeyRefresh(source, trigger, result string) {
	m.keyRefreshes.WithLabelValues(source, trigger, result).Inc()
}

// KeysLoaded records that source now holds n usable keys, loaded at t.
func (m *Metrics) KeysLoaded(source string, n int, t time.Time) {
	m.keys.WithLabelValues(source).Set(float64(n))
	m.lastRefresh.WithLabelValues(source).Set(float64(t.UnixNano()) / 1e9)
}

// BuildInfo records the running version.
func (m *Metrics) BuildInfo(version string) { m.buildInfo.WithLabelValues(version).Set(1) }
