package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// forged is the value every forged header carries; the upstream must never
// see it, under any name.
const forged = "forged-by-client"

// nameVariants are the spellings of one header name that some server folds
// into it: case, '_' and '.' for '-', and mixtures.
func nameVariants(h string) []string {
	mixed := []byte(strings.ToLower(h))
	seps := 0
	for i, c := range mixed {
		if c == '-' {
			mixed[i] = "_."[seps%2]
			seps++
		}
	}
	return []string{
		h,
		strings.ToLower(h),
		strings.ToUpper(h),
		strings.ReplaceAll(h, "-", "_"),
		strings.ReplaceAll(h, "-", "."),
		strings.ToUpper(strings.ReplaceAll(h, "-", "_")),
		string(mixed),
	}
}

// hygieneCase is one forged request: extra header lines, and trailer
// lines sent after a chunked body.
type hygieneCase struct {
	name     string
	lines    []string
	trailers []string
}

// hygieneCases are every variant of every header in headers.
func hygieneCases(headers []string) []hygieneCase {
	var out []hygieneCase
	for _, h := range headers {
		vs := nameVariants(h)
		for _, v := range vs {
			out = append(out, hygieneCase{name: "as " + v, lines: []string{v + ": " + forged}})
		}
		out = append(out,
			hygieneCase{name: h + " twice", lines: []string{h + ": " + forged, h + ": " + forged + "-2"}},
			hygieneCase{name: h + " and its variants together", lines: prefixAll(vs, ": "+forged)},
			hygieneCase{name: h + " nominated by Connection", lines: []string{"Connection: keep-alive, " + h, h + ": " + forged}},
			hygieneCase{name: h + " nominated by Connection as a variant", lines: []string{"Connection: " + vs[3] + ", " + vs[4]}},
			hygieneCase{name: h + " as a trailer", lines: []string{"Trailer: " + h}, trailers: []string{h + ": " + forged}},
			hygieneCase{name: h + " as trailer variants", lines: []string{"Trailer: " + strings.Join(vs[3:5], ", ")}, trailers: prefixAll(vs[3:5], ": "+forged)},
		)
	}
	return out
}

func prefixAll(names []string, suffix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + suffix
	}
	return out
}

// TestHeaderHygiene is the header-hygiene self-test: for every configured
// claim and payload header, every variant a client might forge (case, '_',
// '.', duplicates, Connection-nominated, trailers) is sent byte for byte
// through a real HTTP server in front of the proxy, on a public route and
// on an authenticated one; the upstream never sees a forged value, and on
// the authenticated route it sees each verified header exactly once, set
// by the sidecar. Run it alone with
//
//	go test ./proxy -run TestHeaderHygiene -count=1 -v
func TestHeaderHygiene(t *testing.T) {
	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.ClaimHeaders = []config.ClaimHeader{
			{Claim: "sub", Header: "X-Auth-Subject"},
			{Claim: "realm_access.roles", Header: "X-Auth-Roles"},
		}
		o.PayloadHeader = "X-Auth-Payload"
	})
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	scrubbed := h.proxy.Policy().ScrubbedHeaders()
	if len(scrubbed) != 3 {
		t.Fatalf("the policy scrubs %v; want the two claim headers and the payload header", scrubbed)
	}
	tok := allKeys(t).rsa.Sign(t, claims(issA))
	routes := []struct {
		name, path, auth string
		want             map[string]string // verified headers and their one value
	}{
		{name: "public", path: "/public/x"},
		{name: "authenticated", path: "/api/x", auth: "Authorization: Bearer " + tok, want: map[string]string{
			"X-Auth-Subject": "alice", "X-Auth-Roles": "admin,user", "X-Auth-Payload": payloadOf(tok),
		}},
	}
	cases := hygieneCases(scrubbed)
	for _, route := range routes {
		for i, c := range cases {
			before := len(h.upstream.requests())
			raw := buildRaw(route.path, route.auth, c)
			status, body := exchange(t, addr, raw)
			if status != http.StatusOK {
				t.Errorf("%s, %s: status %d: %s", route.name, c.name, status, body)
				continue
			}
			reqs := h.upstream.requests()
			if len(reqs) != before+1 {
				t.Fatalf("%s, %s: the upstream saw %d requests, want 1", route.name, c.name, len(reqs)-before)
			}
			got := reqs[len(reqs)-1]
			checkHygiene(t, fmt.Sprintf("%s, case %d (%s)", route.name, i, c.name), got, scrubbed, route.want)
		}
	}
}

// payloadOf is the middle segment of a compact JWS.
func payloadOf(tok string) string { return strings.Split(tok, ".")[1] }

// buildRaw writes the request: chunked with trailers when the case has
// any, so that no client library reorders or merges a line.
func buildRaw(path, auth string, c hygieneCase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: sidecar\r\n", path)
	if auth != "" {
		b.WriteString(auth + "\r\n")
	}
	conn := false
	for _, l := range c.lines {
		b.WriteString(l + "\r\n")
		conn = conn || strings.HasPrefix(l, "Connection:")
	}
	if !conn {
		b.WriteString("Connection: close\r\n")
	}
	if len(c.trailers) == 0 {
		b.WriteString("Content-Length: 2\r\n\r\nok")
		return b.String()
	}
	b.WriteString("Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n")
	for _, l := range c.trailers {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// checkHygiene fails when the upstream saw a forged value under any name
// SameHeader folds to a scrubbed one, in headers or trailers, or when a
// verified header is missing or not exactly its one value.
func checkHygiene(t *testing.T, name string, got seen, scrubbed []string, want map[string]string) {
	t.Helper()
	for _, part := range []struct {
		what string
		h    http.Header
	}{{"header", got.Header}, {"trailer", got.Trailer}} {
		for k, vs := range part.h {
			for _, v := range vs {
				if strings.Contains(v, forged) {
					t.Errorf("%s: the upstream saw %s %s: %s", name, part.what, k, v)
				}
			}
			for _, s := range scrubbed {
				if config.SameHeader(k, s) && (part.what == "trailer" || k != http.CanonicalHeaderKey(s)) {
					t.Errorf("%s: the upstream saw %s %s, a variant of %s", name, part.what, k, s)
				}
			}
		}
	}
	for h, v := range want {
		if vs := got.Header[h]; len(vs) != 1 || vs[0] != v {
			t.Errorf("%s: the upstream saw %s = %q, want exactly [%q]", name, h, vs, v)
		}
	}
	if want == nil {
		for _, s := range scrubbed {
			if vs := got.Header[http.CanonicalHeaderKey(s)]; vs != nil {
				t.Errorf("%s: a public request reached the upstream with %s = %q", name, s, vs)
			}
		}
	}
}
