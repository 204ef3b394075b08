package stack

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// exposedSeries is one exposed sample: its labels and value.
type exposedSeries struct {
	labels map[string]string
	value  float64
}

// exposition is one process's /metrics, by exact series name: a histogram
// family x appears as x_bucket (with le), x_count and x_sum, a summary as x
// (with quantile), x_count and x_sum, as PromQL selects them.
type exposition map[string][]exposedSeries

// parseExposition parses the Prometheus text format.
func parseExposition(body []byte) (exposition, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	e := exposition{}
	add := func(name string, base map[string]string, extra, value string, v float64) {
		l := make(map[string]string, len(base)+1)
		for k, val := range base {
			l[k] = val
		}
		if extra != "" {
			l[extra] = value
		}
		e[name] = append(e[name], exposedSeries{labels: l, value: v})
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			base := map[string]string{}
			for _, lp := range m.GetLabel() {
				base[lp.GetName()] = lp.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram() // the text format lists the +Inf bucket too
				for _, b := range h.GetBucket() {
					add(name+"_bucket", base, "le", formatFloat(b.GetUpperBound()), float64(b.GetCumulativeCount()))
				}
				add(name+"_count", base, "", "", float64(h.GetSampleCount()))
				add(name+"_sum", base, "", "", h.GetSampleSum())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, base, "quantile", formatFloat(q.GetQuantile()), q.GetValue())
				}
				add(name+"_count", base, "", "", float64(s.GetSampleCount()))
				add(name+"_sum", base, "", "", s.GetSampleSum())
			case dto.MetricType_COUNTER:
				add(name, base, "", "", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, base, "", "", m.GetGauge().GetValue())
			default:
				add(name, base, "", "", m.GetUntyped().GetValue())
			}
		}
	}
	return e, nil
}

// formatFloat writes a bucket bound or quantile as the exposition does.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// TestCheckAgainstExpositions shows that the live check catches the
// mistakes it exists for, on a small exposition of two jobs.
func TestCheckAgainstExpositions(t *testing.T) {
	sidecar := `# HELP jwt_sidecar_requests_total Requests.
# TYPE jwt_sidecar_requests_total counter
jwt_sidecar_requests_total{outcome="allowed",reason=""} 3
jwt_sidecar_requests_total{outcome="unauthenticated",reason="missing"} 1
# HELP jwt_sidecar_verification_duration_seconds Verification.
# TYPE jwt_sidecar_verification_duration_seconds histogram
jwt_sidecar_verification_duration_seconds_bucket{mode="jwt",le="1e-06"} 1
jwt_sidecar_verification_duration_seconds_bucket{mode="jwt",le="+Inf"} 2
jwt_sidecar_verification_duration_seconds_sum{mode="jwt"} 0.1
jwt_sidecar_verification_duration_seconds_count{mode="jwt"} 2
`
	issuer := `# HELP jwt_issuer_requests_total Requests.
# TYPE jwt_issuer_requests_total counter
jwt_issuer_requests_total{endpoint="jwks",code="200"} 1
jwt_issuer_requests_total{endpoint="discovery",code="200"} 1
`
	expositions := map[string]exposition{}
	for job, text := range map[string]string{jobSidecarJWT: sidecar, jobIssuer: issuer} {
		e, err := parseExposition([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		expositions[job] = e
	}
	tests := []struct {
		name    string
		expr    string
		problem string // "" for none
	}{
		{name: "counter by labels", expr: `sum by (job, outcome) (rate(jwt_sidecar_requests_total[5m]))`},
		{name: "histogram quantile", expr: `histogram_quantile(0.5, sum by (le, mode) (rate(jwt_sidecar_verification_duration_seconds_bucket{job="sidecar-jwt", mode="jwt"}[5m])))`},
		{name: "alternatives", expr: `sum(rate(jwt_issuer_requests_total{endpoint=~"jwks|discovery"}[5m]))`},
		{name: "non-empty label", expr: `sum(rate(jwt_sidecar_requests_total{reason!=""}[5m]))`},
		{name: "empty value means absent", expr: `jwt_sidecar_requests_total{kind=""}`},
		{name: "histogram family name", expr: `rate(jwt_sidecar_verification_duration_seconds[5m])`, problem: "is not exposed"},
		{name: "suffix of another type", expr: `jwt_sidecar_requests_count`, problem: "is not exposed"},
		{name: "metric of another job", expr: `jwt_issuer_requests_total{job="sidecar-jwt"}`, problem: "is not exposed by [sidecar-jwt]"},
		{name: "unknown job", expr: `jwt_issuer_requests_total{job="nope"}`, problem: "selects none of the jobs"},
		{name: "value typo", expr: `jwt_sidecar_verification_duration_seconds_count{mode="jwtt"}`, problem: "no series has that value"},
		{name: "alternative typo", expr: `jwt_issuer_requests_total{endpoint=~"jwks|discovry"}`, problem: `no series has the value "discovry"`},
		{name: "regex matching nothing", expr: `jwt_issuer_requests_total{endpoint=~"int.*"}`, problem: "matches no exposed value"},
		{name: "label typo", expr: `jwt_sidecar_requests_total{reasn!=""}`, problem: `no series has the label "reasn"`},
		{name: "grouping typo", expr: `sum by (outcom) (jwt_sidecar_requests_total)`, problem: `groups by "outcom"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expr, err := parseQuery(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			problems := checkAgainstExpositions(expr, expositions)
			switch {
			case tt.problem == "" && len(problems) != 0:
				t.Errorf("problems %q, want none", problems)
			case tt.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.problem)):
				t.Errorf("problems %q, want one containing %q", problems, tt.problem)
			}
		})
	}
}
