package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// FuzzClaimHeaders decodes an arbitrary JSON payload as the verifier does
// (numbers as json.Number), maps every claim path it contains to a header,
// and checks that no rendered value has a control character or exceeds
// MaxHeaderValue, and that nothing panics.
func FuzzClaimHeaders(f *testing.F) {
	f.Add([]byte(`{"sub":"alice","realm_access":{"roles":["admin","user"]}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		d := json.NewDecoder(bytes.NewReader(payload))
		d.UseNumber()
		var values map[string]any
		if err := d.Decode(&values); err != nil || values == nil {
			return
		}
		var paths []string
		collectPaths(values, "", 0, &paths)
		sort.Strings(paths)
		if len(paths) > 64 {
			paths = paths[:64]
		}
		hm := &policy.Forwarding{PayloadHeader: "X-Payload"}
		for i, path := range paths {
			hm.ClaimHeaders = append(hm.ClaimHeaders, config.ClaimHeader{Claim: path, Header: "X-Claim-" + strconv.Itoa(i)})
		}
		c := verifier.NewClaims(values)
		c.Payload = string(payload) // arbitrary bytes: must be sanitized too
		h := http.Header{}
		setHeaders(t.Context(), discardLogger(), h, hm, &c)
		for name, vals := range h {
			for _, v := range vals {
				checkHeaderValue(t, name, v)
			}
		}
		// The whole payload as one object, and each value directly.
		if s, ok := HeaderValue(values); ok {
			checkHeaderValue(t, "object", s)
		}
		for _, v := range values {
			if s, ok := HeaderValue(v); ok {
				checkHeaderValue(t, "value", s)
			}
		}
	})
}

func checkHeaderValue(t *testing.T, name, v string) {
	t.Helper()
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			t.Fatalf("%s = %q has control byte %#x at %d", name, v, v[i], i)
		}
	}
	if name != "X-Payload" && len(v) > MaxHeaderValue {
		t.Fatalf("%s has %d bytes, more than %d", name, len(v), MaxHeaderValue)
	}
}

// collectPaths lists the dotted path of every value in m, depth first.
func collectPaths(m map[string]any, prefix string, depth int, out *[]string) {
	if depth > 8 {
		return
	}
	for k, v := range m {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		*out = append(*out, path)
		if sub, ok := v.(map[string]any); ok {
			collectPaths(sub, path, depth+1, out)
		}
	}
}
