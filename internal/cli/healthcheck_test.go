package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/readyz" {
			http.Error(w, "keys not loaded yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // a port where nothing listens any more

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantDone bool
		wantOut  string
		wantErr  string
	}{
		{name: "not asked", args: []string{"--help"}},
		{name: "no arguments", args: nil},
		{name: "healthy", args: []string{"healthcheck", srv.URL + "/healthz"}, wantDone: true, wantOut: "200 OK"},
		{name: "flag form", args: []string{"--healthcheck", srv.URL + "/healthz"}, wantDone: true, wantOut: "200 OK"},
		{name: "not ready", args: []string{"healthcheck", srv.URL + "/readyz"}, wantCode: ExitFailed, wantDone: true,
			wantErr: "503 Service Unavailable: keys not loaded yet"},
		{name: "nothing listens", args: []string{"healthcheck", closed.URL + "/healthz"}, wantCode: ExitFailed, wantDone: true,
			wantErr: "connection refused"},
		{name: "no URL", args: []string{"healthcheck"}, wantCode: ExitConfig, wantDone: true, wantErr: "usage: x healthcheck URL"},
		{name: "two URLs", args: []string{"healthcheck", srv.URL, srv.URL}, wantCode: ExitConfig, wantDone: true, wantErr: "usage:"},
		{name: "not http", args: []string{"healthcheck", "127.0.0.1:7071/healthz"}, wantCode: ExitConfig, wantDone: true,
			wantErr: "want an absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code, done := Healthcheck(tt.args, "x", &out, &errOut)
			if code != tt.wantCode || done != tt.wantDone {
				t.Errorf("Healthcheck(%q) = %d, %v; want %d, %v (stderr %q)", tt.args, code, done, tt.wantCode, tt.wantDone, errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) || (tt.wantOut == "" && out.Len() > 0) {
				t.Errorf("stdout = %q, want %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(errOut.String(), tt.wantErr) || (tt.wantErr == "" && errOut.Len() > 0) {
				t.Errorf("stderr = %q, want %q", errOut.String(), tt.wantErr)
			}
		})
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("the server saw %d requests, want 3 (healthy, flag form, not ready)", n)
	}
}

// TestArgsHealthcheck: every command that uses Args has the mode.
func TestArgsHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	code, done := Args([]string{"healthcheck", srv.URL}, "x", "v1", func(io.Writer) {}, &out, &errOut)
	if code != ExitOK || !done || !strings.Contains(out.String(), "200 OK") {
		t.Errorf("Args(healthcheck) = %d, %v, %q, %q; want 0, true, 200 OK", code, done, out.String(), errOut.String())
	}
}
