package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/internal/statuswriter"
	sidecarmetrics "github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "jwt_issuer"

// Endpoints, the `endpoint` label values.
const (
	endpointToken      = "token"
	endpointIntrospect = "introspect"
	endpointRevoke     = "revoke"
	endpointJWKS       = "jwks"
	endpointDiscovery  = "discovery"
	endpointHealthz    = "healthz"
	endpointMetrics    = "metrics"
)

// Grants, the `grant` label values of jwt_issuer_tokens_issued_total.
const (
	grantLabelClientCredentials = "client_credentials"
	grantLabelJWTBearer         = "jwt_bearer"
)

// endpointCodes are the status codes each endpoint can answer; their series
// exist from the start, so dashboards see zeros, not gaps. 405 is a wrong
// method; 500 a fault of the issuer itself.
var endpointCodes = map[string][]int{
	endpointToken:      {200, 400, 401, 405, 500},
	endpointIntrospect: {200, 400, 401, 405},
	endpointRevoke:     {200, 400, 401, 405, 500},
	endpointJWKS:       {200, 405, 500},
	endpointDiscovery:  {200, 405},
	endpointHealthz:    {200, 405},
	endpointMetrics:    {200, 405, 500},
	endpointAuthorize:  {200, 303, 400, 401, 405},
	endpointEndSession: {200, 302, 400, 405},
}

// durationBuckets resolve microseconds (an introspection of a cached key
// is tens of µs) and reach 10 s: ~1.78x per bucket, as the sidecar's.
var durationBuckets = sidecarmetrics.DurationBuckets()

// metrics is every instrument of the issuer, on its own registry.
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	issued      *prometheus.CounterVec
	introspect  *prometheus.CounterVec
	revocations prometheus.Counter

	// Children kept so the request path does no label hashing.
	issuedCC, issuedJWT     prometheus.Counter
	activeTrue, activeFalse prometheus.Counter
}

// newMetrics creates the instruments, registers them with the Go and
// process collectors on reg, and creates every known series.
func newMetrics(reg prometheus.Registerer, version string) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "HTTP requests by endpoint (token, introspect, revoke, jwks, discovery, healthz, metrics) and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "request_duration_seconds",
			Help:      "Time to answer one HTTP request, by endpoint.",
			Buckets:   durationBuckets,
		}, []string{"endpoint"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "tokens_issued_total",
			Help:      "Access tokens issued by /token, by grant (client_credentials, jwt_bearer).",
		}, []string{"grant"}),
		introspect: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "introspections_total",
			Help:      "Answered introspections of authenticated clients, by the answer's active member (true, false).",
		}, []string{"active"}),
		revocations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "revocations_total",
			Help:      "Valid tokens revoked through /revoke (a token counts once; invalid or unknown tokens do not count).",
		}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "Always 1; the version label says which build is running.",
	}, []string{"version"})
	reg.MustRegister(m.requests, m.duration, m.issued, m.introspect, m.revocations, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	buildInfo.WithLabelValues(version).Set(1)
	for ep, codes := range endpointCodes {
		m.duration.WithLabelValues(ep)
		for _, c := range codes {
			m.requests.WithLabelValues(ep, strconv.Itoa(c))
		}
	}
	m.issuedCC = m.issued.WithLabelValues(grantLabelClientCredentials)
	m.issuedJWT = m.issued.WithLabelValues(grantLabelJWTBearer)
	m.activeTrue = m.introspect.WithLabelValues("true")
	m.activeFalse = m.introspect.WithLabelValues("false")
	return m
}

// introspection counts one introspection answer.
func (m *metrics) introspection(active bool) {
	if active {
		m.activeTrue.Inc()
		return
	}
	m.activeFalse.Inc()
}

// tokenIssued counts one issued token of a grant label value.
func (m *metrics) tokenIssued(grant string) {
	switch grant {
	case grantLabelClientCredentials:
		m.issuedCC.Inc()
	case grantLabelJWTBearer:
		m.issuedJWT.Inc()
	default:
		m.issued.WithLabelValues(grant).Inc()
	}
}

// instrument wraps the handler of one endpoint: it counts each request by
// status code and observes its duration. The children of the known codes
// are looked up once, here, not per request.
func (m *metrics) instrument(endpoint string, h http.Handler) http.Handler {
	observer := m.duration.WithLabelValues(endpoint)
	counters := make(map[int]prometheus.Counter, len(endpointCodes[endpoint]))
	for _, c := range endpointCodes[endpoint] {
		counters[c] = m.requests.WithLabelValues(endpoint, strconv.Itoa(c))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statuswriter.New(w)
		h.ServeHTTP(sw, r)
		observer.Observe(time.Since(start).Seconds())
		code := sw.Status()
		if c, ok := counters[code]; ok {
			c.Inc()
			return
		}
		m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	})
}
