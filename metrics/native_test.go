package metrics_test

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/jwt-sidecar/jwt-sidecar/metrics"
)

// protobufAccept is what Prometheus sends to scrape native histograms.
const protobufAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"

// scrapeProtobuf scrapes reg over HTTP in the protobuf exposition, as a
// Prometheus with native histograms enabled does, and decodes the families.
func scrapeProtobuf(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", protobufAccept)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/vnd.google.protobuf") {
		t.Fatalf("Content-Type = %q, want the protobuf exposition", ct)
	}
	dec := expfmt.NewDecoder(res.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	out := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out[mf.GetName()] = &mf
	}
}

// TestNativeHistograms: METRICS_HISTOGRAMS decides whether the latency
// histograms have classic buckets, native buckets or both, as a protobuf
// scrape sees them.
func TestNativeHistograms(t *testing.T) {
	tests := []struct {
		kind        string
		wantClassic bool
		wantNative  bool
	}{
		{kind: "", wantClassic: true},
		{kind: metrics.HistogramsClassic, wantClassic: true},
		{kind: metrics.HistogramsNative, wantNative: true},
		{kind: metrics.HistogramsBoth, wantClassic: true, wantNative: true},
	}
	for _, tt := range tests {
		t.Run("kind="+tt.kind, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := metrics.NewWithOptions(reg, testLabels, metrics.Options{Histograms: tt.kind})
			for _, d := range []time.Duration{3 * time.Microsecond, 40 * time.Microsecond, 2 * time.Millisecond} {
				m.Verification("jwt", d)
				m.Upstream(10 * d)
			}
			m.VerificationInTrace("jwt", 90*time.Microsecond, "4bf92f3577b34da6a3ce929d0e0e4736")
			fams := scrapeProtobuf(t, reg)
			for _, name := range []string{"jwt_sidecar_verification_duration_seconds", "jwt_sidecar_upstream_duration_seconds"} {
				mf := fams[name]
				if mf == nil {
					t.Fatalf("no %s in the scrape", name)
				}
				var h *dto.Histogram
				for _, mm := range mf.GetMetric() {
					if len(mm.GetLabel()) == 0 || mm.GetLabel()[0].GetValue() == "jwt" {
						h = mm.GetHistogram()
					}
				}
				if h == nil {
					t.Fatalf("%s: no series", name)
				}
				// A native-only histogram may still carry one +Inf bucket
				// (client_golang puts classic exemplars there); classic
				// buckets are the finite ones.
				classic := false
				for _, b := range h.GetBucket() {
					classic = classic || !math.IsInf(b.GetUpperBound(), 1)
				}
				native := h.Schema != nil && len(h.GetPositiveSpan()) > 0
				if classic != tt.wantClassic || native != tt.wantNative {
					t.Errorf("%s: classic buckets %v (%d), native %v (schema %v, spans %d); want classic %v, native %v",
						name, classic, len(h.GetBucket()), native, h.Schema, len(h.GetPositiveSpan()), tt.wantClassic, tt.wantNative)
				}
				if native && h.GetSchema() != 3 {
					t.Errorf("%s: schema %d, want 3 (factor 1.1 → 2^(1/8))", name, h.GetSchema())
				}
				if name == "jwt_sidecar_verification_duration_seconds" {
					if got := h.GetSampleCount(); got != 4 {
						t.Errorf("%s: count %d, want 4", name, got)
					}
					if !hasExemplar(h, "4bf92f3577b34da6a3ce929d0e0e4736") {
						t.Errorf("%s: no exemplar with the trace ID", name)
					}
				}
			}
		})
	}
}

func hasExemplar(h *dto.Histogram, traceID string) bool {
	ex := h.GetExemplars()
	for _, b := range h.GetBucket() {
		if b.GetExemplar() != nil {
			ex = append(ex, b.GetExemplar())
		}
	}
	for _, e := range ex {
		for _, l := range e.GetLabel() {
			if l.GetName() == "trace_id" && l.GetValue() == traceID {
				return true
			}
		}
	}
	return false
}
