package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// TestPrometheusScrapesNativeHistograms: a real Prometheus (2.40 or later,
// with its native-histograms feature) scrapes a sidecar started with
// METRICS_HISTOGRAMS=native and answers histogram_count() over the native
// verification histogram. Debian's prometheus package provides the server.
func TestPrometheusScrapesNativeHistograms(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (Debian package prometheus); CI must install it")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus)")
	}
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(up.Close)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "METRICS_HISTOGRAMS": "native"})
	s.waitFor(t, "/readyz", http.StatusOK)
	const requests = 5
	tok := token(t, k)
	for range requests {
		if res := s.get(t, "/api", tok); res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", res.StatusCode)
		}
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sidecar\n    static_configs:\n      - targets: [%q]\n", s.admin)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	web := proctest.FreeAddr(t)
	cmd := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web,
		"--enable-feature=native-histograms")
	logs := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	q := "http://" + web + "/api/v1/query?query=" + url.QueryEscape(`histogram_count(jwt_sidecar_verification_duration_seconds{mode="jwt"})`)
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		if n, body, ok := queryScalar(q); ok && n >= requests {
			return
		} else {
			last = body
		}
		if time.Now().After(deadline) {
			t.Fatalf("histogram_count of the native verification histogram never reached %d; last answer: %s", requests, last)
		}
		time.Sleep(500 * time.Millisecond) // polling Prometheus, bounded by the deadline
	}
}

// queryScalar runs an instant query and returns its first sample's value.
func queryScalar(u string) (float64, string, bool) {
	res, err := http.Get(u)
	if err != nil {
		return 0, err.Error(), false
	}
	defer res.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	raw := new(json.RawMessage)
	if err := json.NewDecoder(res.Body).Decode(raw); err != nil {
		return 0, err.Error(), false
	}
	if err := json.Unmarshal(*raw, &out); err != nil || len(out.Data.Result) == 0 {
		return 0, string(*raw), false
	}
	v, _ := out.Data.Result[0].Value[1].(string)
	n, err := strconv.ParseFloat(v, 64)
	return n, string(*raw), err == nil
}
