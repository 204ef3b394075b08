package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// DecimalBuckets are count exponential bucket bounds from min to max, like
// prometheus.ExponentialBucketsRange, each rounded to three significant
// digits, so the exposition shows le="0.00178" and never
// le="0.0017782794100389228": hand-written PromQL and SLO rules
// (le="0.001") then match a bound exactly. Every binary of the project
// builds its histograms' buckets here.
func DecimalBuckets(min, max float64, count int) []float64 {
	b := prometheus.ExponentialBucketsRange(min, max, count)
	for i, v := range b {
		// The float nearest a 3-digit decimal prints back as that decimal.
		b[i], _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	}
	return b
}

// DurationBuckets resolve single microseconds at the low end and reach
// 10 s, four per decade (1, 1.78, 3.16, 5.62 times a power of ten).
// DefBuckets starts at 5 ms, where local verification is invisible. The
// sidecar, the token service and the load generator share them, so their
// views of one request compare bucket for bucket.
func DurationBuckets() []float64 { return DecimalBuckets(1e-6, 10, 29) }
