package keys_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// idp is a real JWKS endpoint on 127.0.0.1 that answers conditional
// requests like a well-behaved issuer: ETag (unless noETag),
// Last-Modified, and 304 when either validator matches.
type idp struct {
	*httptest.Server
	mu           sync.Mutex
	body         []byte
	modified     time.Time
	noETag       bool
	cacheControl string
	full, notMod atomic.Int64
}

func newIDP(t *testing.T, body []byte) *idp {
	i := &idp{body: body, modified: time.Now().Add(-time.Hour).Truncate(time.Second)}
	i.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.mu.Lock()
		body, mod, noETag, cc := i.body, i.modified, i.noETag, i.cacheControl
		i.mu.Unlock()
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		if !noETag {
			w.Header().Set("ETag", etag)
		}
		w.Header().Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		inm, ims := r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
		if (!noETag && inm == etag) || (inm == "" && ims != "" && ims == mod.UTC().Format(http.TimeFormat)) {
			i.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		i.full.Add(1)
		_, _ = w.Write(body)
	}))
	t.Cleanup(i.Close)
	return i
}

func (i *idp) rotate(body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.body = body
	i.modified = i.modified.Add(time.Minute)
}

// results counts refresh results.
type results struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *results) KeyRefresh(_, _, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[result]++
}
func (r *results) KeysLoaded(string, int, time.Time) {}
func (r *results) get(result string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[result]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func run(t *testing.T, k *keys.Keys) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestConditionalRefresh(t *testing.T) {
	for _, noETag := range []bool{false, true} {
		a, b := jwttest.NewSigner(t, "RS256", "a"), jwttest.NewSigner(t, "ES256", "b")
		i := newIDP(t, jwttest.JWKS(t, a))
		i.noETag = noETag // then If-Modified-Since alone
		rec := &results{}
		src := keys.NewRemoteSource(i.URL+"/jwks", []string{"https://issuer.example"}, nil)
		k, err := keys.NewKeys(keys.KeyOptions{RefreshInterval: 20 * time.Millisecond}, rec, nil, src)
		if err != nil {
			t.Fatal(err)
		}
		run(t, k)
		eventually(t, "three 304s", func() bool { return rec.get(keys.RefreshNotModified) >= 3 })
		if n := i.full.Load(); n != 1 {
			t.Errorf("noETag=%v: %d full answers, want 1 (the rest conditional)", noETag, n)
		}
		if src.KeyCount() != 1 {
			t.Errorf("keys = %d after 304s, want the 1 loaded", src.KeyCount())
		}
		i.rotate(jwttest.JWKS(t, a, b))
		eventually(t, "the rotated set", func() bool { return src.KeyCount() == 2 })
		if rec.get(keys.RefreshOK) != 2 {
			t.Errorf("ok refreshes = %d, want 2", rec.get(keys.RefreshOK))
		}
	}
}

// A max-age longer than the interval stretches it (within bounds): fewer
// requests than the interval alone would make.
func TestMaxAgeStretchesInterval(t *testing.T) {
	i := newIDP(t, jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a")))
	i.cacheControl = "max-age=3600"
	src := keys.NewRemoteSource(i.URL, []string{"https://issuer.example"}, nil)
	k, err := keys.NewKeys(keys.KeyOptions{RefreshInterval: 30 * time.Millisecond}, nil, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, k)
	eventually(t, "two requests", func() bool { return i.full.Load()+i.notMod.Load() >= 2 })
	// jitter is ±10%: 4 × 30ms × 0.9 at least.
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("second request after %s, want about %s (max-age stretched to %d× the interval)", d, 4*30*time.Millisecond, keys.MaxAgeStretch)
	}
}

// relay runs a key relay for the given sources on 127.0.0.1.
func relay(t *testing.T, sources ...*keys.Source) (*httptest.Server, *keys.Keys) {
	k, err := keys.NewKeys(keys.KeyOptions{RefreshInterval: time.Hour, RefetchCooldown: 10 * time.Millisecond, MaxWait: 2 * time.Second}, nil, nil, sources...)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(keys.NewRelay(sources...))
	t.Cleanup(srv.Close)
	return srv, k
}

// relayRequests counts a relay's answers by "status/cache".
type relayRequests struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *relayRequests) RelayRequest(_, status, cache string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[status+"/"+cache]++
}

func (r *relayRequests) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

func keyFor(t *testing.T, k *keys.Keys, iss string, s jwttest.Signer) (any, error) {
	t.Helper()
	raw := s.Sign(t, jwttest.Claims(iss))
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return k.Key(context.Background(), iss, s.KID, s.Alg, tok)
}

func TestRelay(t *testing.T) {
	const iss = "https://issuer.example"
	a, b := jwttest.NewSigner(t, "RS256", "a"), jwttest.NewSigner(t, "ES256", "b")
	i := newIDP(t, jwttest.JWKS(t, a))
	rs, _ := relay(t, keys.NewRemoteSource(i.URL+"/jwks", nil, nil))
	counted := &relayRequests{}
	rs.Config.Handler.(*keys.Relay).Recorder = counted

	// Fifty sidecars load through the relay: the issuer sees the relay only.
	var fleet []*keys.Keys
	for range 50 {
		k, err := keys.NewKeys(keys.KeyOptions{RelayURL: rs.URL, RefetchCooldown: time.Millisecond, MaxWait: 2 * time.Second}, nil, nil,
			keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := k.LoadOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		fleet = append(fleet, k)
	}
	if n := i.full.Load() + i.notMod.Load(); n != 1 {
		t.Errorf("issuer requests = %d, want 1 (the relay's)", n)
	}
	if _, err := keyFor(t, fleet[0], iss, a); err != nil {
		t.Fatalf("key a through the relay: %v", err)
	}

	// A rotation: the first sidecar to see the new kid makes the relay
	// refetch once; the others get it from the relay.
	i.rotate(jwttest.JWKS(t, a, b))
	for n, k := range fleet {
		if _, err := keyFor(t, k, iss, b); err != nil {
			t.Fatalf("sidecar %d: rotated key b: %v", n, err)
		}
	}
	if n := i.full.Load() + i.notMod.Load(); n != 2 {
		t.Errorf("issuer requests after the rotation = %d, want 2", n)
	}
	// What the relay counted: fifty loads, one miss (the first unknown
	// kid), the other sidecars' refetches answered from its keys.
	if got := counted.get("200/hit"); got != 50+49 {
		t.Errorf("200/hit = %d, want 99 (50 loads, 49 refetches)", got)
	}
	if got := counted.get("200/miss"); got != 1 {
		t.Errorf("200/miss = %d, want 1", got)
	}

	// The relay serves key sets, not trust: keys fetched for this source
	// verify only the sidecar's own issuer for it.
	if _, err := keyFor(t, fleet[0], "https://other.example", b); !errors.Is(err, keys.ErrUnknownIssuer) {
		t.Errorf("another issuer's token: %v, want ErrUnknownIssuer", err)
	}
}

func TestRelayRefusesUnconfiguredSources(t *testing.T) {
	i := newIDP(t, jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a")))
	rs, _ := relay(t, keys.NewRemoteSource(i.URL+"/jwks", nil, nil))
	for q, want := range map[string]int{
		"?jwks=" + i.URL + "/jwks":                      http.StatusOK,
		"?jwks=" + i.URL + "/other":                     http.StatusNotFound,
		"?jwks=http://169.254.169.254/latest/meta-data": http.StatusNotFound,
		"?issuer=" + i.URL:                              http.StatusNotFound,
		"":                                              http.StatusBadRequest,
		"?jwks=a&jwks=b":                                http.StatusBadRequest,
	} {
		resp, err := http.Get(rs.URL + keys.RelayPath + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", q, resp.StatusCode, want)
		}
	}
	// And conditional: the same ETag gives 304.
	resp, err := http.Get(rs.URL + keys.RelayPath + "?jwks=" + i.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, rs.URL+keys.RelayPath+"?jwks="+i.URL+"/jwks", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d, want 304", resp.StatusCode)
	}
}

// A relay that is down costs nothing but a log line: the sidecar fetches
// from the issuer itself.
func TestRelayDownFallsBackToIssuer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	a := jwttest.NewSigner(t, "ES256", "a")
	i := newIDP(t, jwttest.JWKS(t, a))
	k, err := keys.NewKeys(keys.KeyOptions{RelayURL: down}, nil, nil, keys.NewRemoteSource(i.URL, []string{"https://issuer.example"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.LoadOnce(context.Background()); err != nil {
		t.Fatalf("with the relay down: %v", err)
	}
	if _, err := keyFor(t, k, "https://issuer.example", a); err != nil {
		t.Fatal(err)
	}
	if i.full.Load() != 1 {
		t.Errorf("issuer requests = %d, want 1", i.full.Load())
	}
}

// A sidecar restarted with keys in JWKS_CACHE_DIR gets a key rotated
// meanwhile through the relay's unknown-kid refetch.
func TestRelayUnknownKIDAfterDiskCache(t *testing.T) {
	const iss = "https://issuer.example"
	a, b := jwttest.NewSigner(t, "RS256", "a"), jwttest.NewSigner(t, "ES256", "b")
	i := newIDP(t, jwttest.JWKS(t, a))
	dir := t.TempDir()
	first, err := keys.NewKeys(keys.KeyOptions{CacheDir: dir}, nil, nil, keys.NewRemoteSource(i.URL, []string{iss}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs, _ := relay(t, keys.NewRemoteSource(i.URL, nil, nil))
	i.rotate(jwttest.JWKS(t, a, b))
	k, err := keys.NewKeys(keys.KeyOptions{CacheDir: dir, RelayURL: rs.URL, RefreshInterval: time.Hour, MaxWait: 2 * time.Second}, nil, nil,
		keys.NewRemoteSource(i.URL, []string{iss}, nil))
	if err != nil {
		t.Fatal(err)
	}
	run(t, k)
	eventually(t, "keys from disk", func() bool { return k.Ready() })
	if _, err := keyFor(t, k, iss, b); err != nil {
		t.Fatalf("rotated key through the relay: %v", err)
	}
}

// A relay whose keys for a source are older than StaleAfter answers 503:
// the sidecar fetches from the issuer itself rather than trust a relay
// that has lost its issuer. Within the bound the relay serves.
func TestRelayStaleAfter(t *testing.T) {
	const iss = "https://issuer.example"
	a := jwttest.NewSigner(t, "ES256", "a")
	for _, tt := range []struct {
		staleAfter time.Duration
		wantIssuer int64 // the sidecar's requests to the issuer
		wantStatus string
	}{
		{staleAfter: time.Hour, wantIssuer: 0, wantStatus: "200/hit"},
		{staleAfter: time.Nanosecond, wantIssuer: 1, wantStatus: "503/hit"},
	} {
		i := newIDP(t, jwttest.JWKS(t, a))
		rs, _ := relay(t, keys.NewRemoteSource(i.URL+"/jwks", nil, nil))
		counted := &relayRequests{}
		r := rs.Config.Handler.(*keys.Relay)
		r.Recorder, r.StaleAfter = counted, tt.staleAfter
		before := i.full.Load() + i.notMod.Load() // the relay's own load
		k, err := keys.NewKeys(keys.KeyOptions{RelayURL: rs.URL}, nil, nil, keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := k.LoadOnce(context.Background()); err != nil {
			t.Fatalf("staleAfter %s: %v", tt.staleAfter, err)
		}
		if _, err := keyFor(t, k, iss, a); err != nil {
			t.Errorf("staleAfter %s: %v", tt.staleAfter, err)
		}
		if got := i.full.Load() + i.notMod.Load() - before; got != tt.wantIssuer {
			t.Errorf("staleAfter %s: the sidecar asked the issuer %d times, want %d", tt.staleAfter, got, tt.wantIssuer)
		}
		if counted.get(tt.wantStatus) != 1 {
			t.Errorf("staleAfter %s: relay answers %v, want one %s", tt.staleAfter, counted.n, tt.wantStatus)
		}
	}
}
