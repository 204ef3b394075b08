package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// revocationPoll is REVOCATION_REFRESH_INTERVAL in these tests: short, so
// they are quick, and long enough next to a fetch on a loaded machine.
const revocationPoll = 400 * time.Millisecond

// devIssuer is a running jwt-issuer binary (cmd/jwt-issuer): real /token,
// /revoke, /revoke-subject, /revocations and JWKS.
type devIssuer struct {
	*proctest.Process
	base string
}

func startDevIssuer(t *testing.T) *devIssuer {
	t.Helper()
	bin, cleanup, err := proctest.Build("../jwt-issuer", "jwt-issuer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	p := proctest.Start(t, bin, []string{"LISTEN_ADDR=" + addr, "ISSUER_URL=" + base, "TOKEN_TTL=10m"})
	p.WaitFor(t, base+"/healthz", http.StatusOK)
	return &devIssuer{Process: p, base: base}
}

// post calls the issuer as the demo client.
func (is *devIssuer) post(t *testing.T, path string, form url.Values) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, is.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo", "demo-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s = %d %v", path, resp.StatusCode, body)
	}
	return body
}

func (is *devIssuer) token(t *testing.T) string {
	t.Helper()
	tok, _ := is.post(t, "/token", url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
	if tok == "" {
		t.Fatal("no access_token")
	}
	return tok
}

// refusedWithin polls the sidecar with tok until it answers 401 revoked,
// and returns how long that took and how many requests passed before.
func refusedWithin(t *testing.T, s *sidecar, tok string, limit time.Duration) (time.Duration, int64) {
	return refusedAs(t, s, tok, limit, verifier.Revoked)
}

// refusedAs is refusedWithin for any reason: introspection says inactive.
func refusedAs(t *testing.T, s *sidecar, tok string, limit time.Duration, reason verifier.Reason) (time.Duration, int64) {
	t.Helper()
	start := time.Now()
	for passed := int64(0); ; passed++ {
		resp := s.get(t, "/orders", tok)
		if resp.StatusCode == http.StatusUnauthorized {
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token", error_description="`+reason.Description()+`"`) {
				t.Fatalf("refused with %q, want %s", ch, reason)
			}
			return time.Since(start), passed
		}
		if resp.StatusCode != http.StatusOK || time.Since(start) > limit {
			t.Fatalf("status %d after %s, want a revoked refusal within %s", resp.StatusCode, time.Since(start), limit)
		}
		time.Sleep(10 * time.Millisecond) // the test's own poll, not a wait for readiness
	}
}

// TestRevocationThroughSidecar: the real sidecar polls the real dev
// issuer's /revocations. A token revoked at /revoke (RFC 7009), then every
// token of its subject revoked at /revoke-subject, are refused within one
// poll interval, on token-cache hits too (each was accepted, so cached,
// before), and never reach the upstream; other tokens pass. Then the
// issuer goes away: the sidecar keeps refusing them and stays ready; and a
// sidecar restarted with the cache dir during the outage refuses them from
// its first request.
func TestRevocationThroughSidecar(t *testing.T) {
	is := startDevIssuer(t)
	up, seen := recordingUpstream(t)
	cacheDir := t.TempDir()
	env := map[string]string{
		"UPSTREAM_URL": up.URL, "ISSUERS": is.base, "AUDIENCES": "demo-api",
		"JWKS_URLS":                   is.base + "/.well-known/jwks.json",
		"JWKS_CACHE_DIR":              cacheDir,
		"REVOCATION_LIST_URL":         is.base + "/revocations",
		"REVOCATION_REFRESH_INTERVAL": revocationPoll.String(),
		"REVOCATION_STALE_AFTER":      "2s",
	}
	s := startSidecar(t, env)
	s.waitFor(t, "/readyz", http.StatusOK)

	tokA, tokB := is.token(t), is.token(t)
	for _, tok := range []string{tokA, tokA, tokB, tokB} {
		if resp := s.get(t, "/orders", tok); resp.StatusCode != http.StatusOK {
			t.Fatalf("a fresh token = %d", resp.StatusCode)
		}
	}
	limit := revocationPoll*11/10 + 500*time.Millisecond // jitter, a fetch, a loaded machine

	is.post(t, "/revoke", url.Values{"token": {tokA}})
	before := seen.Load()
	took, passed := refusedWithin(t, s, tokA, 10*time.Second)
	if got := seen.Load() - before; got != passed {
		t.Errorf("the upstream saw %d requests, want the %d that passed: the refusal reached it", got, passed)
	}
	t.Logf("revocation by jti: first refusal after %s (poll interval %s)", took.Round(time.Millisecond), revocationPoll)
	if took > limit {
		t.Errorf("the revocation took %s, more than one poll interval (%s)", took, limit)
	}
	if resp := s.get(t, "/orders", tokB); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other token = %d", resp.StatusCode)
	}
	before = seen.Load()
	is.post(t, "/revoke-subject", url.Values{})
	took, passed = refusedWithin(t, s, tokB, 10*time.Second)
	t.Logf("revocation by subject: first refusal after %s", took.Round(time.Millisecond))
	if took > limit {
		t.Errorf("the subject revocation took %s, more than one poll interval (%s)", took, limit)
	}
	if resp := s.get(t, "/orders", tokA); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tokA after the subject revocation = %d", resp.StatusCode)
	}
	if got := seen.Load() - before; got != passed {
		t.Errorf("the upstream saw %d requests, want the %d that passed: a refusal reached it", got, passed)
	}
	reached := seen.Load()

	// The outage: the list keeps serving, the sidecar stays ready, and the
	// failures are counted.
	_ = is.Cmd.Process.Kill()
	is.ExitCode(t)
	waitSeries(t, s, `jwt_sidecar_revocation_fetches_total{result="error",source="`+is.base+`/revocations"}`)
	waitSeries(t, s, `jwt_sidecar_revocation_list_stale{source="`+is.base+`/revocations"} 1`)
	for _, tok := range []string{tokA, tokB} {
		if resp := s.get(t, "/orders", tok); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("during the outage a revoked token = %d", resp.StatusCode)
		}
	}
	s.waitFor(t, "/readyz", http.StatusOK)

	// A restart during the outage: keys and list come from the cache dir.
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	if code := s.ExitCode(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	s2 := startSidecar(t, env)
	s2.waitFor(t, "/readyz", http.StatusOK)
	for _, tok := range []string{tokA, tokB} {
		if resp := s2.get(t, "/orders", tok); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("after a restart during the outage a revoked token = %d", resp.StatusCode)
		}
	}
	if seen.Load() != reached {
		t.Errorf("the upstream saw %d refused requests", seen.Load()-reached)
	}
	waitSeries(t, s2, `jwt_sidecar_revocation_fetches_total{result="from_disk",source="`+is.base+`/revocations"} 1`)
}

// waitSeries polls /metrics until a line starts with want (a series, or a
// series and its value).
func waitSeries(t *testing.T, s *sidecar, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + s.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metric %s in:\n%s", want, body)
		}
		time.Sleep(50 * time.Millisecond) // the test's own poll
	}
}

// TestRevocationListVersusIntrospection measures the trade the list makes,
// on one dev issuer: the time from a revocation to the first refusal, and
// the token-service calls it cost, for a jwt-mode sidecar polling the list
// and an introspection-mode sidecar asking on every request. The list is
// bounded by its poll interval and costs one call per interval; introspection
// refuses at once and costs one call per request.
func TestRevocationListVersusIntrospection(t *testing.T) {
	is := startDevIssuer(t)
	up, _ := recordingUpstream(t)
	list := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL, "ISSUERS": is.base, "AUDIENCES": "demo-api",
		"JWKS_URLS":                   is.base + "/.well-known/jwks.json",
		"REVOCATION_LIST_URL":         is.base + "/revocations",
		"REVOCATION_REFRESH_INTERVAL": revocationPoll.String(),
	})
	list.waitFor(t, "/readyz", http.StatusOK)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("demo-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := &sidecar{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	in.Process = proctest.Start(t, binary, []string{
		"LISTEN_ADDR=" + in.listen, "ADMIN_ADDR=" + in.admin, "UPSTREAM_URL=" + up.URL,
		"AUTH_MODE=introspection", "INTROSPECTION_URL=" + is.base + "/introspect",
		"INTROSPECTION_CLIENT_ID=demo", "INTROSPECTION_CLIENT_SECRET_FILE=" + secretFile,
		"ISSUERS=" + is.base, "AUDIENCES=demo-api",
	})
	in.waitFor(t, "/readyz", http.StatusOK)

	const requests = 200
	tok := is.token(t)
	start := time.Now()
	for range requests {
		for _, s := range []*sidecar{list, in} {
			if resp := s.get(t, "/orders", tok); resp.StatusCode != http.StatusOK {
				t.Fatalf("before the revocation = %d", resp.StatusCode)
			}
		}
	}
	elapsed := time.Since(start)
	is.post(t, "/revoke", url.Values{"token": {tok}})
	inTook, inPassed := refusedAs(t, in, tok, 10*time.Second, verifier.Inactive)
	listTook, _ := refusedWithin(t, list, tok, 10*time.Second)
	if inPassed != 0 {
		t.Errorf("introspection let %d requests pass after the revocation", inPassed)
	}
	if limit := revocationPoll*11/10 + 500*time.Millisecond; listTook > limit {
		t.Errorf("the list took %s to refuse, more than one poll interval (%s)", listTook, limit)
	}
	calls := func(s *sidecar, series string) float64 {
		resp, err := http.Get("http://" + s.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var sum float64
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, series) {
				var v float64
				fields := strings.Fields(line)
				fmt.Sscan(fields[len(fields)-1], &v)
				sum += v
			}
		}
		return sum
	}
	listCalls := calls(list, "jwt_sidecar_revocation_fetches_total{")
	inCalls := calls(in, "jwt_sidecar_introspection_requests_total{")
	t.Logf("revocation to first refusal: list (poll %s) %s, introspection %s", revocationPoll, listTook.Round(time.Millisecond), inTook.Round(time.Millisecond))
	t.Logf("token-service calls for %d requests in %s: list %.0f, introspection %.0f", requests+1, elapsed.Round(time.Millisecond), listCalls, inCalls)
	if inCalls < requests {
		t.Errorf("introspection made %.0f calls for %d requests", inCalls, requests)
	}
	if listCalls >= inCalls {
		t.Errorf("the list made %.0f calls, introspection %.0f", listCalls, inCalls)
	}
}
