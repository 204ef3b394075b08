package cli

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"

	"github.com/prometheus/client_golang/prometheus"
)

// served wraps h so that done closes when a request has been answered.
func served(h http.Handler, done chan<- struct{}) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		once.Do(func() { close(done) })
	})
}

// TestScraperHangingUpIsNoError: a real client asks for a large /metrics
// (several MB, far beyond the socket buffers), reads a little and resets
// the connection. The write fails, and the log says so at debug level,
// never as an ERROR line. A collector that fails still logs an ERROR.
func TestScraperHangingUpIsNoError(t *testing.T) {
	reg := prometheus.NewRegistry()
	big := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "big_series", Help: "many series"}, []string{"name"})
	reg.MustRegister(big)
	pad := strings.Repeat("x", 80)
	for i := range 60000 {
		big.WithLabelValues(pad + strconv.Itoa(i)).Set(float64(i))
	}
	logs := &proctest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := make(chan struct{})
	srv := httptest.NewServer(served(AdminHandler(reg, log, func() error { return nil }), done))
	t.Cleanup(srv.Close)

	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadAtLeast(conn, buf, 1); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetLinger(0) // a reset, as a scraper killed by its timeout
	conn.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the /metrics handler did not finish")
	}
	out := logs.String()
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("a scraper that hung up was logged as an error:\n%s", out)
	}
	if !strings.Contains(out, "metrics scraper hung up mid-response") {
		t.Errorf("no debug line for the hang-up:\n%s", out)
	}

	// A collector that fails is still an error.
	bad := prometheus.NewRegistry()
	bad.MustRegister(failing{})
	logs2 := &proctest.Buffer{}
	srv2 := httptest.NewServer(AdminHandler(bad, slog.New(slog.NewTextHandler(logs2, nil)), func() error { return nil }))
	t.Cleanup(srv2.Close)
	resp, err := http.Get(srv2.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(logs2.String(), "level=ERROR") {
		t.Errorf("a failing collector: status %d, log:\n%s", resp.StatusCode, logs2.String())
	}
}

type failing struct{}

var failingDesc = prometheus.NewDesc("failing", "fails", nil, nil)

func (failing) Describe(ch chan<- *prometheus.Desc) { ch <- failingDesc }
func (failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(failingDesc, errors.New("the collector broke"))
}
