package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

const newIssuerName = "https://new.test"

// readyz reads /readyz: its status and body.
func (s *sidecar) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitBody polls url until its body contains want.
func waitBody(t *testing.T, url, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if last = string(b); strings.Contains(last, want) {
				return last
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not say %q within 15s; last:\n%s", url, want, last)
		}
		time.Sleep(20 * time.Millisecond) // the poll interval
	}
}

// TestReloadAddsProviderWhoseKeysAreDown: a valid reload adds a provider
// whose JWKS answers 503. The pod stays ready (every replica reads the same
// file: all would leave the Service at once); /readyz, the metrics and the
// log say the new provider has no keys yet; the old provider's routes keep
// answering 200 and the new one's 401 unknown_key (the upstream sees none of them);
// once its JWKS is up the provider turns fresh without a restart.
func TestReloadAddsProviderWhoseKeysAreDown(t *testing.T) {
	oldKey := jwttest.NewSigner(t, "ES256", "old-1")
	newKey := jwttest.NewSigner(t, "ES256", "new-1")
	oldIdP := newIssuer(t, oldKey, true)
	newIdP := newIssuer(t, newKey, false)
	up, seen := recordingUpstream(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	oldPolicy := `providers:
  - {name: old, issuer: ` + testIssuer + `, jwks_url: ` + oldIdP.URL + `, audiences: [api]}
rules:
  - {name: old, match: {prefix: /old}, require: old}
`
	writeAtomic(t, path, oldPolicy)
	s := &sidecar{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	s.Process = proctest.Start(t, binary, []string{"UPSTREAM_URL=" + up.URL, "CONFIG_FILE=" + path, "LOG_FORMAT=text",
		"LISTEN_ADDR=" + s.listen, "ADMIN_ADDR=" + s.admin, "JWKS_REFRESH_INTERVAL=1h"})
	s.waitFor(t, "/readyz", http.StatusOK)
	oldTok := signFor(t, oldKey, testIssuer, "api")
	newTok := signFor(t, newKey, newIssuerName, "api")

	// The whole file, providers first (YAML keys are not repeatable).
	writeAtomic(t, path, `providers:
  - {name: old, issuer: `+testIssuer+`, jwks_url: `+oldIdP.URL+`, audiences: [api]}
  - {name: new, issuer: `+newIssuerName+`, jwks_url: `+newIdP.URL+`, audiences: [api]}
rules:
  - {name: old, match: {prefix: /old}, require: old}
  - {name: new, match: {prefix: /new}, require: new}
`)
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, s, `jwt_sidecar_config_reloads_total{result="success"} 1`)

	code, body := s.readyz(t)
	if code != http.StatusOK {
		t.Errorf("/readyz after adding a provider without keys: %d, want 200\n%s", code, body)
	}
	for _, want := range []string{"ok\n", "provider=old state=fresh keys=1", "provider=new state=no_keys"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	if resp := s.get(t, "/old/x", oldTok); resp.StatusCode != http.StatusOK {
		t.Errorf("old provider's route: %d, want 200", resp.StatusCode)
	}
	resp := s.get(t, "/new/x", newTok)
	if resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("new provider without keys: %d, challenge %q; want 401 invalid_token (unknown_key, the contract's answer)",
			resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if n := seen.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (the old provider's)", n)
	}
	metricsURL := "http://" + s.admin + "/metrics"
	waitBody(t, metricsURL, `jwt_sidecar_provider_state{provider="new",state="no_keys"} 1`)
	waitBody(t, metricsURL, `jwt_sidecar_provider_state{provider="old",state="fresh"} 1`)
	if logs := s.Logs(); !strings.Contains(logs, "provider has no keys yet") || !strings.Contains(logs, "provider=new") {
		t.Errorf("no log line for the new provider's state:\n%s", logs)
	}

	// Its JWKS comes up: the background retry loads the keys.
	newIdP.up.Store(true)
	waitBody(t, "http://"+s.admin+"/readyz", "provider=new state=fresh keys=1")
	waitBody(t, metricsURL, `jwt_sidecar_provider_state{provider="new",state="fresh"} 1`)
	if resp := s.get(t, "/new/x", newTok); resp.StatusCode != http.StatusOK {
		t.Errorf("new provider with keys: %d, want 200", resp.StatusCode)
	}
	if code, body := s.readyz(t); code != http.StatusOK {
		t.Errorf("/readyz: %d\n%s", code, body)
	}
	if logs := s.Logs(); !strings.Contains(logs, `msg="provider state" provider=new state=fresh previous=no_keys`) {
		t.Errorf("no log line for the transition to fresh:\n%s", logs)
	}
}
