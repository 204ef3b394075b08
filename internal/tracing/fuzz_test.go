package tracing_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/internal/tracing"
)

// FuzzTraceHeaders: whatever a client puts in traceparent, tracestate and
// baggage, the server span starts, the request is served, and what goes
// upstream is a well-formed traceparent of the sidecar's own span (a
// malformed one from the client is never forwarded as the trace context).
func FuzzTraceHeaders(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=abc", "user=alice")
	f.Add("00-00000000000000000000000000000000-0000000000000000-01", "", "")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=1,b=2,=", "k=%zz;p")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", strings.Repeat("k=v,", 64), strings.Repeat("a=b,", 200))
	tr, err := tracing.New(tracing.Options{Exporter: discard{}, ServiceName: "fuzz", Sampler: "parentbased_always_on"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = tr.Shutdown(f.Context()) })
	var sent http.Header
	up := tr.Upstream(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	}))
	h := tr.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://127.0.0.1:3000/", nil)
		out.Header = r.Header.Clone()
		res, err := up.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(res.StatusCode)
	}))
	f.Fuzz(func(t *testing.T, traceparent, tracestate, baggage string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Traceparent"] = []string{traceparent}
		r.Header["Tracestate"] = []string{tracestate}
		r.Header["Baggage"] = []string{baggage}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d", rec.Code)
		}
		if tp := sent.Get("Traceparent"); !traceparentRE.MatchString(tp) {
			t.Fatalf("upstream traceparent = %q, want a well-formed one", tp)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
