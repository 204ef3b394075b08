package statuswriter

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStatus(t *testing.T) {
	for name, c := range map[string]struct {
		handler http.HandlerFunc
		want    int
	}{
		"nothing written": {func(http.ResponseWriter, *http.Request) {}, 200},
		"body only":       {func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("x")) }, 200},
		"explicit":        {func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, 503},
		"first wins":      {func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404); w.WriteHeader(500) }, 404},
		"1xx skipped":     {func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(103); w.WriteHeader(201) }, 201},
	} {
		rec := httptest.NewRecorder()
		sw := New(rec)
		c.handler(sw, httptest.NewRequest(http.MethodGet, "/", nil))
		if got := sw.Status(); got != c.want {
			t.Errorf("%s: Status() = %d, want %d", name, got, c.want)
		}
		if sw.Unwrap() != rec {
			t.Errorf("%s: Unwrap does not reach the server's writer", name)
		}
	}
}
