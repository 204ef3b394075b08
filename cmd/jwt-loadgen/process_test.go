package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/test/promtest"
)

// These tests run the real binaries as processes: jwt-loadgen against the
// real jwt-issuer, real signals, real exit codes.

var loadgenBin, issuerBin string

func TestMain(m *testing.M) {
	var cleanups []func()
	for _, b := range []struct {
		dir, name string
		to        *string
	}{{".", "jwt-loadgen", &loadgenBin}, {"../jwt-issuer", "jwt-issuer", &issuerBin}} {
		bin, cleanup, err := proctest.Build(b.dir, b.name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		*b.to = bin
		cleanups = append(cleanups, cleanup)
	}
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

// scrape reads a /metrics page into metric families.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return fams
}

// counter sums the series of name that have label=value.
func counter(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	sum := 0.0
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				sum += m.GetCounter().GetValue()
				break
			}
		}
	}
	return sum
}

// TestProcessOutageDrill: the load generator gets 1 s tokens from the real
// issuer, the issuer is killed, and the load goes on with the last token
// while the failed refreshes are counted. SIGTERM then stops it with exit 0.
func TestProcessOutageDrill(t *testing.T) {
	issuerAddr := proctest.FreeAddr(t)
	issuer := proctest.Start(t, issuerBin, []string{
		"LISTEN_ADDR=" + issuerAddr, "ISSUER_URL=http://" + issuerAddr,
		"TOKEN_TTL=1s", "CLIENTS=loadgen:pa ss",
	})
	issuer.WaitFor(t, "http://"+issuerAddr+"/healthz", http.StatusOK)

	target, seen := countingTarget(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("pa ss\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := proctest.FreeAddr(t)
	lg := proctest.Start(t, loadgenBin, []string{
		"TOKEN_URL=http://" + issuerAddr + "/token", "CLIENT_ID=loadgen", "CLIENT_SECRET_FILE=" + secretFile,
		"TARGETS=" + target.URL + "/api", "RATE=50", "ADMIN_ADDR=" + admin, "REPORT_INTERVAL=500ms",
	})
	lg.WaitFor(t, "http://"+admin+"/readyz", http.StatusOK)
	lg.WaitFor(t, "http://"+admin+"/healthz", http.StatusOK)
	metrics := "http://" + admin + "/metrics"

	fams := scrape(t, metrics)
	// Every histogram's bounds are exact decimals (le="0.001").
	promtest.CheckBucketBounds(t, promtest.Scrape(t, metrics), "jwt_loadgen_request_duration_seconds")
	for _, name := range []string{
		"jwt_loadgen_requests_total", "jwt_loadgen_request_duration_seconds", "jwt_loadgen_scheduled_total",
		"jwt_loadgen_dropped_total", "jwt_loadgen_in_flight", "jwt_loadgen_token_requests_total",
		"jwt_loadgen_token_expiry_timestamp_seconds", "jwt_loadgen_build_info", "go_goroutines", "process_cpu_seconds_total",
	} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if h := fams["jwt_loadgen_request_duration_seconds"].GetMetric(); len(h) != 1 || h[0].GetLabel()[0].GetValue() != target.URL+"/api" {
		t.Errorf("request_duration_seconds series = %v, want one, labelled with the target", h)
	}

	// The outage: the issuer dies with a token of at most 1 s in hand.
	if err := issuer.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	issuer.ExitCode(t)
	okAtKill := counter(scrape(t, metrics), "jwt_loadgen_requests_total", "code", "200")
	eventually(t, "refreshes fail and the load goes on", func() bool {
		f := scrape(t, metrics)
		return counter(f, "jwt_loadgen_token_requests_total", "result", "error") >= 2 &&
			counter(f, "jwt_loadgen_requests_total", "code", "200") >= okAtKill+25
	})

	if err := lg.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := lg.ExitCode(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	logs := lg.Logs()
	for _, want := range []string{`"msg":"token fetch failed"`, `"sending_with_token_expiring_in"`, `"msg":"load finished"`, `"msg":"jwt-loadgen stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if seen.Load() == 0 {
		t.Error("the target saw no request")
	}
}

// TestProcessDuration: with DURATION the process sends, then exits 0 by
// itself; a bad variable exits 2 naming it.
func TestProcessDuration(t *testing.T) {
	issuerAddr := proctest.FreeAddr(t)
	issuer := proctest.Start(t, issuerBin, []string{"LISTEN_ADDR=" + issuerAddr, "ISSUER_URL=http://" + issuerAddr, "CLIENTS=loadgen:pw"})
	issuer.WaitFor(t, "http://"+issuerAddr+"/healthz", http.StatusOK)
	target, seen := countingTarget(t)
	base := []string{
		"TOKEN_URL=http://" + issuerAddr + "/token", "CLIENT_ID=loadgen", "CLIENT_SECRET=pw",
		"TARGETS=" + target.URL, "ADMIN_ADDR=" + proctest.FreeAddr(t), "RATE=40",
	}
	lg := proctest.Start(t, loadgenBin, append(base, "DURATION=500ms"))
	if code := lg.ExitCode(t); code != 0 {
		t.Errorf("exit code after DURATION = %d, want 0", code)
	}
	if n := seen.Load(); n != 20 {
		t.Errorf("the target saw %d requests, want 20 (RATE 40 for 500ms)", n)
	}
	bad := proctest.Start(t, loadgenBin, append(base, "CONCURRENCY=none"))
	if code := bad.ExitCode(t); code != 2 || !strings.Contains(bad.Logs(), "CONCURRENCY:") {
		t.Errorf("bad CONCURRENCY: exit %d, output %q; want 2 naming the variable", code, bad.Logs())
	}
}
