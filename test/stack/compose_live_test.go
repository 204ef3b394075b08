package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The published ports of the live test: free ones picked at run time and
// handed to compose through the *_PORT variables of docker-compose.yml, so
// the test runs beside a developer's own stack on the default ports.
var livePorts = []string{
	"ISSUER_PORT", "SIDECAR_JWT_PORT", "SIDECAR_JWT_ADMIN_PORT",
	"SIDECAR_INTROSPECTION_PORT", "SIDECAR_INTROSPECTION_ADMIN_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT",
}

// TestStackLive brings the whole stack up as CI can (the CI override: the
// Prometheus stand-in, no Grafana) under a project name of its own, then
// proves through the published 127.0.0.1 ports that both sidecars refuse a
// request without a token and pass one with a token from the containerised
// issuer, and that the containerised Prometheus scraped every job, saw both
// verification modes, the load generator's successes through both sidecars
// and the issuer's introspections. Skips without docker, fails under CI=true.
func TestStackLive(t *testing.T) {
	c := findCompose(t)
	c.needEngine(t)
	// The project as the test runs it, for the demo client's credentials.
	p := loadCompose(t, composeFile, composeCIFile)
	demoSecret, ok := issuerClients(t, serviceEnv(serviceRunning(t, p, "jwt-issuer"))["CLIENTS"])["demo"]
	if !ok {
		t.Fatal("the issuer has no demo client, which the README's curl examples use")
	}

	project := fmt.Sprintf("jwtsidecartest%d", os.Getpid())
	ports := map[string]string{}
	var portEnv []string
	for _, v := range livePorts {
		ports[v] = freePort(t)
		portEnv = append(portEnv, v+"="+ports[v])
	}
	files := []string{"-p", project, "-f", "docker-compose.yml", "-f", "deploy/compose/docker-compose.ci.yml"}
	compose := func(ctx context.Context, args ...string) (string, error) {
		return c.run(ctx, portEnv, slices.Concat(files, args)...)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := compose(ctx, "ps", "-a")
			t.Logf("compose ps:\n%s", out)
			out, _ = compose(ctx, "logs", "--no-color", "--tail=200")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := compose(ctx, "down", "-v", "--remove-orphans"); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	})

	// docker-compose 1.29 has no --wait: up returns once the services that
	// others depend on are healthy; waitHealthy polls for the rest.
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	if out, err := compose(ctx, "up", "-d", "--build"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitHealthy(t, c, compose, len(p.Services))

	at := func(port, path string) string { return "http://127.0.0.1:" + ports[port] + path }
	token := fetchToken(t, at("ISSUER_PORT", "/token"), "demo", demoSecret)
	for _, sidecar := range []struct{ name, port string }{
		{"sidecar-jwt", "SIDECAR_JWT_PORT"},
		{"sidecar-introspection", "SIDECAR_INTROSPECTION_PORT"},
	} {
		t.Run(sidecar.name, func(t *testing.T) {
			refused := "/stack-test/refused-by-" + sidecar.name
			resp := getWithToken(t, at(sidecar.port, refused), "")
			if resp.code != http.StatusUnauthorized || !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("no token: %d %q, want 401 with a Bearer challenge", resp.code, resp.header.Get("WWW-Authenticate"))
			}
			resp = getWithToken(t, at(sidecar.port, "/stack-test/allowed"), token)
			if resp.code != http.StatusOK {
				t.Fatalf("with a token: %d %s, want 200", resp.code, resp.body)
			}
			var echo struct {
				Headers map[string][]string `json:"headers"`
			}
			if err := json.Unmarshal([]byte(resp.body), &echo); err != nil {
				t.Fatalf("the upstream's echo: %v: %s", err, resp.body)
			}
			if got := echo.Headers["X-Auth-Subject"]; len(got) != 1 || got[0] != "demo" {
				t.Errorf("the upstream saw X-Auth-Subject %q, want [demo]", got)
			}
			if _, ok := echo.Headers["Authorization"]; ok {
				t.Error("the upstream saw the token")
			}
			// echo-upstream logs the path of every request it gets.
			logs, err := compose(ctx, "logs", "--no-color", "upstream")
			if err != nil {
				t.Fatalf("%v\n%s", err, logs)
			}
			if strings.Contains(logs, refused) {
				t.Errorf("the upstream received the refused request %s", refused)
			}
			if !strings.Contains(logs, "/stack-test/allowed") {
				t.Error("the upstream's log lacks the allowed request, so it cannot show the refused one never arrived")
			}
		})
	}

	// Scraped every 5 s: poll, with a deadline, until every expectation holds.
	prom := at("PROMETHEUS_PORT", "/api/v1/query")
	jobs := float64(len(scrapeJobs(t)))
	checks := []struct {
		what, query string
		want        func(float64) bool
	}{
		{"every scrape job up", `count(up == 1)`, func(v float64) bool { return v == jobs }},
		{"jwt-mode verifications by sidecar-jwt",
			`sum(jwt_sidecar_verification_duration_seconds_count{job="sidecar-jwt",mode="jwt"})`, positive},
		{"introspection-mode verifications by sidecar-introspection",
			`sum(jwt_sidecar_verification_duration_seconds_count{job="sidecar-introspection",mode="introspection"})`, positive},
		{"load generator successes through both sidecars",
			`count(sum by (target) (jwt_loadgen_requests_total{job="loadgen",code="200"}) > 0)`, func(v float64) bool { return v == 2 }},
		{"introspections answered active by the issuer",
			`sum(jwt_issuer_introspections_total{job="issuer",active="true"})`, positive},
	}
	deadline := time.Now().Add(2 * time.Minute)
	last := map[string]string{}
	for {
		pending := 0
		for _, ch := range checks {
			v, err := promQuery(ctx, prom, ch.query)
			switch {
			case err != nil:
				last[ch.what] = err.Error()
			case !ch.want(v):
				last[ch.what] = fmt.Sprintf("%s = %g", ch.query, v)
			default:
				delete(last, ch.what)
				continue
			}
			pending++
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			for what, got := range last {
				t.Errorf("Prometheus, after 2 minutes: %s: %s", what, got)
			}
			return
		}
		time.Sleep(time.Second) // the poll interval, not a wait for readiness
	}
}

func positive(v float64) bool { return v > 0 }

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// waitHealthy polls the project's containers until all n run and every one
// with a health check is healthy; a container that exits or turns unhealthy
// fails at once.
func waitHealthy(t *testing.T, c composeTool, compose func(context.Context, ...string) (string, error), n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var state string
	for {
		ids, err := compose(t.Context(), "ps", "-a", "-q")
		if err != nil {
			t.Fatalf("%v\n%s", err, ids)
		}
		state, err = inspect(t.Context(), c, strings.Fields(ids))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(state), "\n")
		ready := len(strings.Fields(ids)) == n
		for _, l := range lines {
			name, status, health := splitState(l)
			if status != "running" || health == "unhealthy" {
				t.Fatalf("%s is %s %s:\n%s", name, status, health, state)
			}
			if health != "" && health != "healthy" {
				ready = false
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stack was not healthy within 3 minutes:\n%s", state)
		}
		time.Sleep(time.Second) // the poll interval, not a wait for readiness
	}
}

// inspect returns one "name status health" line per container.
func inspect(ctx context.Context, c composeTool, ids []string) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	out, err := exec.CommandContext(ctx, c.docker, append([]string{"inspect", "--format",
		"{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"}, ids...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker inspect: %w: %s", err, shortOutput(out))
	}
	return string(out), nil
}

func splitState(line string) (name, status, health string) {
	f := strings.Fields(line)
	for len(f) < 3 {
		f = append(f, "")
	}
	return f[0], f[1], f[2]
}

// fetchToken gets a client_credentials token from the issuer.
func fetchToken(t *testing.T, tokenURL, id, secret string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tokenURL,
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		t.Fatalf("POST %s: %s, %v", tokenURL, resp.Status, err)
	}
	return body.AccessToken
}

type httpResult struct {
	code   int
	header http.Header
	body   string
}

// getWithToken sends GET url, with a bearer token unless it is "".
func getWithToken(t *testing.T, rawURL, token string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// promQuery runs an instant query that answers one sample and returns its
// value; an empty result is an error.
func promQuery(ctx context.Context, api, query string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"?"+url.Values{"query": {query}}.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("%s: %s", body.Status, body.Error)
	}
	if len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("%s: %d samples, want 1", query, len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
