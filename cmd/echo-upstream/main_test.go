package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(handler(slog.New(slog.DiscardHandler)))
	defer srv.Close()

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/a/b?x=1&y=2", strings.NewReader("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("x-auth-subject", "demo")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	var got echo
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.Path != "/a/b" || got.Query != "x=1&y=2" || got.BodyBytes != 11 {
		t.Errorf("echo = %+v, want POST /a/b x=1&y=2 with 11 body bytes", got)
	}
	if v := got.Headers["X-Auth-Subject"]; !slices.Equal(v, []string{"demo"}) {
		t.Errorf("X-Auth-Subject = %q, want [demo] under the canonical name", v)
	}
	if v := got.Headers["X-Multi"]; !slices.Equal(v, []string{"one", "two"}) {
		t.Errorf("X-Multi = %q, want [one two]", v)
	}
}

func TestEchoSortedHeaders(t *testing.T) {
	srv := httptest.NewServer(handler(slog.New(slog.DiscardHandler)))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Zeta", "z")
	req.Header.Set("Alpha", "a")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if a, z := strings.Index(string(body), `"Alpha"`), strings.Index(string(body), `"Zeta"`); a < 0 || z < a {
		t.Errorf("headers not sorted in %s", body)
	}
}

func TestHealthz(t *testing.T) {
	srv := httptest.NewServer(handler(slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// TestRun starts the real listener from LISTEN_ADDR and stops it by
// cancelling the context.
func TestRun(t *testing.T) {
	addr := proctest.FreeAddr(t)
	t.Setenv("LISTEN_ADDR", addr)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard, io.Discard) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v, want nil after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
}
