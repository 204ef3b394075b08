package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jwt-sidecar/jwt-sidecar/tools/compare/comparison"
)

const (
	requestsMetric     = "jwt_sidecar_requests_total"
	verificationMetric = "jwt_sidecar_verification_duration_seconds"
)

// stepMetrics is (f): what the requests above cost, from the sidecar's
// own Prometheus metrics.
func (d *demo) stepMetrics(ctx context.Context) {
	d.heading("(f) What did verification cost? The sidecar's Prometheus metrics")
	resp, ok := d.send(ctx, request{method: http.MethodGet, url: d.adminURL() + "/metrics"}, http.StatusOK, false)
	if !ok {
		return
	}
	d.say("Only the %s lines with a non-zero value:", requestsMetric)
	shown, zeros := requestLines(resp.body)
	for _, l := range shown {
		fmt.Fprintf(d.out, "   %s\n", l)
	}
	if zeros > 0 {
		fmt.Fprintf(d.out, "   (%d more series are 0)\n", zeros)
	}

	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(resp.body))
	if err != nil {
		d.unexpectedf("cannot parse the metrics: %v", err)
		return
	}
	if fam := families[requestsMetric]; fam == nil {
		d.unexpectedf("no %s in the metrics", requestsMetric)
	} else {
		allowed := counterSum(fam, "outcome", "allowed")
		refused := counterSum(fam, "outcome", "unauthenticated")
		if d.token != "" && (allowed < 2 || refused < 3) {
			d.unexpectedf("outcome=allowed is %g and outcome=unauthenticated is %g; the steps above make at least 2 and 3", allowed, refused)
		}
	}
	fam := families[verificationMetric]
	if fam == nil {
		d.unexpectedf("no %s in the metrics", verificationMetric)
		return
	}
	buckets, count := mergeHistograms(fam, "mode", "jwt")
	if count == 0 {
		d.unexpectedf("%s{mode=\"jwt\"} has no observations", verificationMetric)
		return
	}
	// Estimated as histogram_quantile does, like the comparison of step (g).
	p50, p99 := comparison.Quantile(0.50, buckets), comparison.Quantile(0.99, buckets)
	d.say("Local JWT verification, from %s{mode=\"jwt\"} over %d verifications:", verificationMetric, count)
	fmt.Fprintf(d.out, "   p50 ≈ %.1f µs   p99 ≈ %.1f µs   (estimated from the histogram buckets, as histogram_quantile does)\n", p50*1e6, p99*1e6)
	d.say("No network round trip to the issuer: compare with the milliseconds a token introspection call (RFC 7662) costs.")
}

// requestLines returns the requests_total sample lines whose value is not
// zero, and how many were zero.
func requestLines(text []byte) ([]string, int) {
	var shown []string
	zeros := 0
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, requestsMetric+"{") && !strings.HasPrefix(line, requestsMetric+" ") {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil && v == 0 {
			zeros++
			continue
		}
		shown = append(shown, line)
	}
	return shown, zeros
}

// counterSum adds the counters of fam whose label name has value.
func counterSum(fam *dto.MetricFamily, name, value string) float64 {
	sum := 0.0
	for _, m := range fam.GetMetric() {
		if labelValue(m, name) == value {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// mergeHistograms sums the histograms of fam whose label name has value,
// bucket by bucket, and counts their observations.
func mergeHistograms(fam *dto.MetricFamily, name, value string) ([]comparison.Bucket, uint64) {
	byBound := map[float64]float64{}
	var count uint64
	for _, m := range fam.GetMetric() {
		if labelValue(m, name) != value || m.GetHistogram() == nil {
			continue
		}
		hist := m.GetHistogram()
		count += hist.GetSampleCount()
		for _, b := range hist.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // added from the count below
				byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		byBound[math.Inf(1)] += float64(hist.GetSampleCount())
	}
	buckets := make([]comparison.Bucket, 0, len(byBound))
	for b, c := range byBound {
		buckets = append(buckets, comparison.Bucket{LE: b, Count: c})
	}
	slices.SortFunc(buckets, func(x, y comparison.Bucket) int { return cmp.Compare(x.LE, y.LE) })
	return buckets, count
}
