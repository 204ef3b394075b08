package verifier_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// base is the fixed "now" of the tests; tokens are minted relative to it.
var base = jwttest.Now

const (
	issA = jwttest.IssuerA
	issB = jwttest.IssuerB
	aud  = jwttest.Audience
)

type signer = jwttest.Signer

func newSigner(t testing.TB, alg, kid string) signer { return jwttest.NewSigner(t, alg, kid) }

// claims are standard valid claims at base, for issuer iss.
func claims(iss string) jwt.MapClaims { return jwttest.Claims(iss) }

func jwksJSON(t testing.TB, signers ...signer) []byte { return jwttest.JWKS(t, signers...) }

// jwksServer is a real JWKS endpoint on 127.0.0.1 whose answer the test
// changes, and which counts its fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	status  int
	body    []byte
	block   chan struct{} // when set, requests wait on it
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	js := &jwksServer{status: http.StatusOK, body: body}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		status, body, block := js.status, js.body, js.block
		js.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) serve(status int, body []byte) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.status, js.body = status, body
}

func (js *jwksServer) blockWith(ch chan struct{}) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.block = ch
}

// keyEvents records key-source telemetry, like the metrics package does.
type keyEvents struct {
	mu      sync.Mutex
	results map[string]int // trigger/result -> count
}

func (k *keyEvents) KeyRefresh(_, trigger, result string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.results == nil {
		k.results = map[string]int{}
	}
	k.results[trigger+"/"+result]++
}

func (k *keyEvents) KeysLoaded(string, int, time.Time) {}

func (k *keyEvents) count(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.results[key]
}

func mustKeys(t testing.TB, opts keys.KeyOptions, rec keys.KeyRecorder, sources ...*keys.Source) *keys.Keys {
	t.Helper()
	k, err := keys.NewKeys(opts, rec, nil, sources...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustVerifier(t testing.TB, o verifier.Options) *verifier.Verifier {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return base }
	}
	v, err := verifier.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func load(t testing.TB, k *keys.Keys) {
	t.Helper()
	if err := k.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://sidecar/api", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func reasonOf(err error) verifier.Reason {
	if err == nil {
		return ""
	}
	r, ok := verifier.ReasonOf(err)
	if !ok {
		return "UNCLASSIFIED"
	}
	return r
}
