package stack

import (
	"bytes"
	"context"
	"fmt"
	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The Prometheus jobs of the compose stack (docs/contract.md): a dashboard
// selector with a job matcher must find its metric in that job's exposition.
const (
	jobIssuer        = "issuer"
	jobSidecarJWT    = "sidecar-jwt"
	jobSidecarIntro  = "sidecar-introspection"
	jobLoadgen       = "loadgen"
	jobKeyRelay      = "key-relay"
	liveStartTimeout = 30 * time.Second
)

// TestDashboardMetricsLive runs every binary the stack runs, natively on
// 127.0.0.1, sends traffic through both sidecars, and checks every selector
// of the dashboard against what the processes really expose: the metric
// name exactly as exposed (a histogram exposes name_bucket, name_count and
// name_sum), the label names the selectors match and group by, and the
// label values they compare with. promtool lints each exposition.
func TestDashboardMetricsLive(t *testing.T) {
	queries := dashboardQueries(t, loadDashboard(t))
	bin := t.TempDir()
	buildBinaries(t, bin)
	secretFile := filepath.Join(t.TempDir(), "introspection-secret")
	if err := os.WriteFile(secretFile, []byte("sidecar-secret"), 0o600); err != nil {
		t.Fatal(err)
	}

	issuerAddr := proctest.FreeAddr(t)
	issuerURL := "http://" + issuerAddr
	issuer := startLive(t, bin, "jwt-issuer", "serve",
		"LISTEN_ADDR="+issuerAddr, "ISSUER_URL="+issuerURL,
		"CLIENTS=test:test-secret,loadgen:loadgen-secret,sidecar:sidecar-secret")
	issuer.waitReady(t, issuerURL+"/healthz")

	upstreamAddr := proctest.FreeAddr(t)
	upstream := startLive(t, bin, "echo-upstream", "", "LISTEN_ADDR="+upstreamAddr)
	upstream.waitReady(t, "http://"+upstreamAddr+"/healthz")

	common := []string{"UPSTREAM_URL=http://" + upstreamAddr, "ISSUERS=" + issuerURL, "AUDIENCES=demo-api"}
	jwtMode := startSidecar(t, bin, slices.Concat(common, []string{
		"JWKS_URLS=" + issuerURL + "/.well-known/jwks.json"}))
	introMode := startSidecar(t, bin, slices.Concat(common, []string{
		"AUTH_MODE=introspection", "INTROSPECTION_URL=" + issuerURL + "/introspect",
		"INTROSPECTION_CLIENT_ID=sidecar", "INTROSPECTION_CLIENT_SECRET_FILE=" + secretFile}))

	// A few requests through each sidecar, so that the paths behind the
	// panels have run: allowed, no token, a malformed token.
	token := fetchToken(t, issuerURL+"/token", "test", "test-secret")
	for _, s := range []*sidecarProc{jwtMode, introMode} {
		for _, c := range []struct {
			token string
			want  int
		}{{token, http.StatusOK}, {"", http.StatusUnauthorized}, {"not.a.jwt", http.StatusUnauthorized}} {
			if got := s.send(t, c.token); got != c.want {
				t.Errorf("%s: status %d with token %.12q, want %d", s.job, got, c.token, c.want)
			}
		}
	}

	loadgenAdmin := proctest.FreeAddr(t)
	loadgen := startLive(t, bin, "jwt-loadgen", "",
		"TOKEN_URL="+issuerURL+"/token", "CLIENT_ID=loadgen", "CLIENT_SECRET=loadgen-secret",
		"TARGETS=http://"+jwtMode.listen+"/load,http://"+introMode.listen+"/load",
		"RATE=20", "CONCURRENCY=2", "DURATION=2m", "ADMIN_ADDR="+loadgenAdmin)
	loadgen.waitReady(t, "http://"+loadgenAdmin+"/healthz")
	loadgen.waitForLoad(t, "http://"+loadgenAdmin+"/metrics", 2)

	// The key relay, asked as sidecars ask it: a load, a conditional
	// request, an unknown kid; its own refreshes (every second here) turn
	// into 304s from the issuer.
	relayListen, relayAdmin := proctest.FreeAddr(t), proctest.FreeAddr(t)
	relay := startLive(t, bin, "jwt-key-relay", "", "LISTEN_ADDR="+relayListen, "ADMIN_ADDR="+relayAdmin,
		"JWKS_URLS="+issuerURL+"/.well-known/jwks.json", "JWKS_REFRESH_INTERVAL=1s", "JWKS_CACHE_DIR="+t.TempDir())
	relay.waitReady(t, "http://"+relayAdmin+"/readyz")
	askRelay(t, "http://"+relayListen, issuerURL+"/.well-known/jwks.json")
	relay.poll(t, func() bool {
		body, err := fetchExposition("http://" + relayAdmin + "/metrics")
		return err == nil && bytes.Contains(body, []byte(`result="not_modified"`))
	}, func() string { return "the relay's refreshes never got a 304 from the issuer" })

	scraped := map[string][]byte{
		jobKeyRelay:     mustScrape(t, "http://"+relayAdmin+"/metrics"),
		jobIssuer:       mustScrape(t, issuerURL+"/metrics"),
		jobSidecarJWT:   mustScrape(t, "http://"+jwtMode.admin+"/metrics"),
		jobSidecarIntro: mustScrape(t, "http://"+introMode.admin+"/metrics"),
		jobLoadgen:      mustScrape(t, "http://"+loadgenAdmin+"/metrics"),
	}
	expositions := map[string]exposition{}
	for job, body := range scraped {
		e, err := parseExposition(body)
		if err != nil {
			t.Fatalf("%s: the exposition does not parse: %v", job, err)
		}
		expositions[job] = e
	}

	t.Run("selectors", func(t *testing.T) {
		for _, q := range queries {
			for _, problem := range checkAgainstExpositions(q.expr, expositions) {
				t.Errorf("%s: %s", q, problem)
			}
		}
	})
	t.Run("variables", func(t *testing.T) {
		for _, v := range loadDashboard(t).Templating.List[1:] {
			vs, label, err := labelValuesQuery(v)
			if err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			problems := checkAgainstExpositions(vs, expositions)
			if !isTargetLabel(label) {
				problems = append(problems, checkAgainstExpositions(&parser.AggregateExpr{
					Op: parser.SUM, Expr: vs, Grouping: []string{label},
				}, expositions)...)
			}
			for _, p := range problems {
				t.Errorf("variable %s: %s", v.Name, p)
			}
		}
	})
	t.Run("promtool", func(t *testing.T) {
		promtool := lookPromtool(t)
		for _, job := range sortedNames(scraped) {
			lintExposition(t, promtool, job, scraped[job])
		}
	})
}

// checkAgainstExpositions returns what in e the processes do not expose.
func checkAgainstExpositions(e parser.Expr, expositions map[string]exposition) []string {
	var problems []string
	seriesOf := func(vs *parser.VectorSelector) ([]exposedSeries, string, []string) {
		name, err := metricName(vs)
		if err != nil {
			return nil, "", []string{err.Error()}
		}
		jobs := matchingJobs(vs, expositions)
		if len(jobs) == 0 {
			return nil, name, []string{fmt.Sprintf("%s: its job matcher selects none of the jobs %v", vs, sortedNames(expositions))}
		}
		var out []exposedSeries
		for _, job := range jobs {
			out = append(out, expositions[job][name]...)
		}
		if len(out) == 0 {
			return nil, name, []string{fmt.Sprintf("%s is not exposed by %v", name, jobs)}
		}
		return out, name, nil
	}
	for _, vs := range vectorSelectors(e) {
		ss, name, errs := seriesOf(vs)
		problems = append(problems, errs...)
		if ss == nil {
			continue
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel || isTargetLabel(m.Name) {
				continue
			}
			if p := checkMatcher(m, ss); p != "" {
				problems = append(problems, fmt.Sprintf("%s: %s", name, p))
			}
		}
	}
	for _, g := range groupings(e) {
		var ss []exposedSeries
		for _, vs := range g.selectors {
			s, _, _ := seriesOf(vs) // their problems are reported above
			ss = append(ss, s...)
		}
		if ss == nil {
			continue
		}
		for _, l := range g.labels {
			if !isTargetLabel(l) && len(labelValues(ss, l)) == 0 {
				problems = append(problems, fmt.Sprintf("groups by %q, which no series of %v has", l, g.selectors))
			}
		}
	}
	return problems
}

// isTargetLabel reports whether Prometheus adds the label at scrape time,
// so that no exposition carries it: job and instance always; namespace, pod
// and workload from a Kubernetes scrape (the chart's PodMonitor) or, in the
// compose stack, from prometheus.yml.
func isTargetLabel(name string) bool {
	switch name {
	case "job", "instance", "namespace", "pod", "workload":
		return true
	}
	return false
}

// matchingJobs is the jobs whose name the selector's job matchers accept.
func matchingJobs(vs *parser.VectorSelector, expositions map[string]exposition) []string {
	var jobs []string
	for _, job := range sortedNames(expositions) {
		ok := true
		for _, m := range vs.LabelMatchers {
			if m.Name == "job" && !m.Matches(job) {
				ok = false
			}
		}
		if ok {
			jobs = append(jobs, job)
		}
	}
	return jobs
}

// literalAlternatives matches a regular expression that only lists values.
var literalAlternatives = regexp.MustCompile(`^[\w:-]+(\|[\w:-]+)*$`)

// checkMatcher says what is wrong with a label matcher given the series of
// its metric, or "" when nothing is: the label must exist, and a value the
// matcher names must be one some series has (a typo selects nothing, and
// the panel shows "No data" forever).
func checkMatcher(m *labels.Matcher, ss []exposedSeries) string {
	values := labelValues(ss, m.Name)
	switch {
	case m.Type == labels.MatchEqual && m.Value == "":
		return "" // selects series without the label
	case len(values) == 0:
		return fmt.Sprintf("matcher %s: no series has the label %q", m, m.Name)
	case m.Type == labels.MatchEqual:
		if !values[m.Value] {
			return fmt.Sprintf("matcher %s: no series has that value; exposed: %v", m, sortedNames(values))
		}
	case m.Type == labels.MatchRegexp && literalAlternatives.MatchString(m.Value):
		for _, v := range strings.Split(m.Value, "|") {
			if !values[v] {
				return fmt.Sprintf("matcher %s: no series has the value %q; exposed: %v", m, v, sortedNames(values))
			}
		}
	case m.Type == labels.MatchRegexp:
		for v := range values {
			if m.Matches(v) {
				return ""
			}
		}
		return fmt.Sprintf("matcher %s: matches no exposed value of %v", m, sortedNames(values))
	}
	return ""
}

// labelValues is the set of non-empty values of label name in ss.
func labelValues(ss []exposedSeries, name string) map[string]bool {
	values := map[string]bool{}
	for _, s := range ss {
		if v := s.labels[name]; v != "" {
			values[v] = true
		}
	}
	return values
}

// liveProc is one of the project's binaries running for a test.
type liveProc struct{ *proc.Child }

// startLive runs bin/name with exactly env (and one argument unless arg is
// empty), its output in a log file of the test. The process is killed when
// the test ends; the end of its log is shown if the test failed.
func startLive(t *testing.T, bin, name, arg string, env ...string) *liveProc {
	t.Helper()
	var args []string
	if arg != "" {
		args = append(args, arg)
	}
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = env
	c, err := proc.StartChild(name, filepath.Join(t.TempDir(), name+".log"), cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, c.Tail(200))
		}
	})
	return &liveProc{c}
}

var liveClient = &http.Client{Timeout: 5 * time.Second}

// waitReady polls url until it answers 200. It fails after
// liveStartTimeout, or at once if the process exits.
func (p *liveProc) waitReady(t *testing.T, url string) {
	t.Helper()
	if err := p.WaitReady(t.Context(), url, liveStartTimeout); err != nil {
		t.Fatal(err)
	}
}

// waitForLoad polls the load generator's metrics until it has sent requests
// to at least n different targets.
func (p *liveProc) waitForLoad(t *testing.T, metricsURL string, n int) {
	t.Helper()
	var targets map[string]bool
	p.poll(t, func() bool {
		targets = map[string]bool{}
		body, err := fetchExposition(metricsURL)
		if err != nil {
			return false
		}
		e, err := parseExposition(body)
		if err != nil {
			return false
		}
		for _, s := range e["jwt_loadgen_requests_total"] {
			if s.value > 0 {
				targets[s.labels["target"]] = true
			}
		}
		return len(targets) >= n
	}, func() string {
		return fmt.Sprintf("jwt_loadgen_requests_total counted requests to %v, want %d targets", sortedNames(targets), n)
	})
}

// poll calls ready until it returns true, failing with failure() after
// liveStartTimeout or when the process exits.
func (p *liveProc) poll(t *testing.T, ready func() bool, failure func() string) {
	t.Helper()
	deadline := time.Now().Add(liveStartTimeout)
	for !ready() {
		if p.Exited() {
			t.Fatalf("%s: %v", failure(), p.Died())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, within %s", failure(), liveStartTimeout)
		}
		time.Sleep(50 * time.Millisecond) // the poll interval, not a wait for readiness
	}
}

// sidecarProc is a running jwt-sidecar.
type sidecarProc struct {
	*liveProc
	job           string
	listen, admin string
}

// startSidecar runs jwt-sidecar with env on free ports and waits until
// /readyz answers 200.
func startSidecar(t *testing.T, bin string, env []string) *sidecarProc {
	t.Helper()
	s := &sidecarProc{job: jobSidecarJWT, listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	if slices.Contains(env, "AUTH_MODE=introspection") {
		s.job = jobSidecarIntro
	}
	s.liveProc = startLive(t, bin, "jwt-sidecar", "", slices.Concat(env,
		[]string{"LISTEN_ADDR=" + s.listen, "ADMIN_ADDR=" + s.admin, "LOG_LEVEL=warn"})...)
	s.waitReady(t, "http://"+s.admin+"/readyz")
	return s
}

// send makes one request through the sidecar, with token unless it is
// empty, and returns the status.
func (s *sidecarProc) send(t *testing.T, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.listen+"/dashboard-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := liveClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", s.job, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// fetchExposition returns the body of a 200 answer to GET url.
func fetchExposition(url string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// The text format: what promtool 2.42 (Debian 12) lints.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := liveClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, err
}

// mustScrape is fetchExposition that fails the test on an error.
func mustScrape(t *testing.T, url string) []byte {
	t.Helper()
	body, err := fetchExposition(url)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// lookPromtool finds promtool (Debian package prometheus). Without it the
// lint is skipped, except in CI, where its absence is a failure.
func lookPromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	needTool(t, "promtool (Debian package prometheus)", err)
	return path
}

// lintExposition runs `promtool check metrics` on body. Its lint findings
// (a counter without _total, a unit that is not a base unit, ...) fail the
// test like its parse errors: the metric names are a contract that
// dashboards and alerts are written against, so they follow Prometheus's
// naming conventions without exception.
func lintExposition(t *testing.T, promtool, job string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on the %s exposition: %v\n%s", job, err, out)
	}
}

// askRelay makes the requests a sidecar makes of a key relay: a load, a
// conditional refresh (304) and an unknown kid's refetch.
func askRelay(t *testing.T, relay, jwksURL string) {
	t.Helper()
	target := relay + "/v1/jwks?jwks=" + url.QueryEscape(jwksURL)
	var etag string
	for _, c := range []struct {
		query, etag string
		want        int
	}{{"", "", http.StatusOK}, {"", "etag", http.StatusNotModified}, {"&kid=rotated-in", "", http.StatusOK}} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target+c.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := liveClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("relay %s (If-None-Match %q): status %d, want %d", c.query, req.Header.Get("If-None-Match"), resp.StatusCode, c.want)
		}
		if etag == "" {
			etag = resp.Header.Get("ETag")
		}
	}
}
