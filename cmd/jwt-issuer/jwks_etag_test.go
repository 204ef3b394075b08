package main

import (
	"net/http"
	"testing"
	"time"
)

// The JWKS answers a conditional refresh with 304 while its ETag matches
// (weakly, in a list), and with the whole set to any other tag.
func TestJWKSConditional(t *testing.T) {
	_, base := testServer(t, func(c *config) { c.KeyRotationInterval = time.Hour })
	resp, body := get(t, http.DefaultClient, base+"/.well-known/jwks.json")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || len(etag) < 10 || len(body) == 0 {
		t.Fatalf("status %d, ETag %q, %d bytes", resp.StatusCode, etag, len(body))
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag} {
		req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/jwks.json", nil)
		req.Header.Set("If-None-Match", inm)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: status %d, ETag %q; want 304 with the same ETag", inm, resp.StatusCode, resp.Header.Get("ETag"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/jwks.json", nil)
	req.Header.Set("If-None-Match", `"stale"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a stale ETag: status %d, want 200", resp.StatusCode)
	}
}
