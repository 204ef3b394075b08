package verifier_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// logRecords decodes the JSON lines in buf whose msg is msg.
func logRecords(t *testing.T, buf *proctest.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestKeyLifecycleLogs: the first load names every kid, a rotation names
// the kids added and removed, and a withdrawal is a warning.
func TestKeyLifecycleLogs(t *testing.T) {
	k1, k2 := newSigner(t, "RS256", "k1"), newSigner(t, "RS256", "k2")
	k3 := k1.WithKID("k3")
	js := newJWKSServer(t, jwksJSON(t, k1, k2))
	buf := &proctest.Buffer{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ks, err := keys.NewKeys(keys.KeyOptions{RefetchCooldown: time.Nanosecond}, nil, log, keys.NewRemoteSource(js.URL, []string{issA}, nil))
	if err != nil {
		t.Fatal(err)
	}
	load(t, ks)
	loaded := logRecords(t, buf, "keys loaded")
	if len(loaded) != 1 || loaded[0]["keys"] != float64(2) || !reflect.DeepEqual(loaded[0]["kids"], []any{"k1", "k2"}) {
		t.Fatalf("keys loaded lines = %v, want one with keys 2 and kids [k1 k2]", loaded)
	}
	v := mustVerifier(t, verifier.Options{Keys: ks})
	// The issuer rotates: k1 goes, k3 comes; a token naming k3 refetches.
	js.serve(http.StatusOK, jwksJSON(t, k2, k3))
	if _, err := v.Verify(t.Context(), bearer(k3.Sign(t, claims(issA)))); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	rotated := logRecords(t, buf, "keys rotated")
	if len(rotated) != 1 || !reflect.DeepEqual(rotated[0]["added"], []any{"k3"}) ||
		!reflect.DeepEqual(rotated[0]["removed"], []any{"k1"}) {
		t.Fatalf("keys rotated lines = %v, want added [k3], removed [k1]", rotated)
	}
	withdrawn := logRecords(t, buf, "keys withdrawn: tokens they signed are refused from now on, cached ones included")
	if len(withdrawn) != 1 || withdrawn[0]["level"] != "WARN" || !reflect.DeepEqual(withdrawn[0]["kids"], []any{"k1"}) {
		t.Fatalf("withdrawn lines = %v, want one warning naming k1", withdrawn)
	}
	// The same set again is no news: debug only.
	if _, err := v.Verify(t.Context(), bearer(k1.WithKID("k4").Sign(t, claims(issA)))); err == nil {
		t.Fatal("a token of an unpublished kid passed")
	}
	if n := len(logRecords(t, buf, "keys rotated")); n != 1 {
		t.Errorf("keys rotated lines after an unchanged refetch = %d, want 1", n)
	}
	if n := len(logRecords(t, buf, "keys refreshed, unchanged")); n != 1 {
		t.Errorf("unchanged refresh lines = %d, want 1", n)
	}
}

// TestKeySourceFailingAndRecovering runs the refresh loop against an
// issuer that fails, then recovers: each failure counts up, and the
// recovery says how many refreshes failed.
func TestKeySourceFailingAndRecovering(t *testing.T) {
	k1 := newSigner(t, "RS256", "k1")
	js := newJWKSServer(t, jwksJSON(t, k1))
	buf := &proctest.Buffer{}
	log := slog.New(slog.NewJSONHandler(buf, nil))
	ks, err := keys.NewKeys(keys.KeyOptions{RefreshInterval: 20 * time.Millisecond}, nil, log,
		keys.NewRemoteSource(js.URL, []string{issA}, nil))
	if err != nil {
		t.Fatal(err)
	}
	load(t, ks)
	js.serve(http.StatusInternalServerError, []byte("down"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = ks.Run(ctx) }()
	defer func() { cancel(); <-done }()
	poll := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s: %s", what, buf)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	poll("second failure", func() bool {
		for _, l := range logRecords(t, buf, "key source refresh failed; cached keys keep serving") {
			if l["failed_refreshes"] == float64(2) && l["keys"] == float64(1) {
				return true
			}
		}
		return false
	})
	js.serve(http.StatusOK, jwksJSON(t, k1))
	poll("recovery", func() bool { return len(logRecords(t, buf, "key source recovered")) == 1 })
	rec := logRecords(t, buf, "key source recovered")[0]
	if n, _ := rec["failed_refreshes"].(float64); n < 2 {
		t.Errorf("recovered after %v failed refreshes, want at least 2", rec["failed_refreshes"])
	}
	if d, _ := rec["failing_for"].(string); d == "" {
		t.Errorf("recovery line has no failing_for")
	}
}
