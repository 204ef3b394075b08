package verifier_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// remoteFixture is a verifier over one real JWKS endpoint.
func remoteFixture(t *testing.T, opts keys.KeyOptions, signers ...signer) (*verifier.Verifier, *jwksServer, *keyEvents) {
	t.Helper()
	js := newJWKSServer(t, jwksJSON(t, signers...))
	ev := &keyEvents{}
	keys := mustKeys(t, opts, ev, keys.NewRemoteSource(js.URL, []string{issA}, nil))
	load(t, keys)
	return mustVerifier(t, verifier.Options{Keys: keys, CacheSize: 100}), js, ev
}

func TestKeyRotation(t *testing.T) {
	old, next := newSigner(t, "RS256", "k1"), newSigner(t, "RS256", "k2")
	v, js, ev := remoteFixture(t, keys.KeyOptions{RefetchCooldown: time.Hour}, old)
	if _, err := v.Verify(t.Context(), bearer(old.Sign(t, claims(issA)))); err != nil {
		t.Fatal(err)
	}
	// The issuer publishes k2 and signs with it at once: the first token
	// naming k2 triggers one refetch and passes.
	js.serve(http.StatusOK, jwksJSON(t, old, next))
	before := js.fetches.Load()
	if _, err := v.Verify(t.Context(), bearer(next.Sign(t, claims(issA)))); err != nil {
		t.Fatalf("token with the new kid: %v", err)
	}
	if got := js.fetches.Load() - before; got != 1 {
		t.Errorf("fetches for the new kid = %d, want 1", got)
	}
	if ev.count("unknown_kid/ok") != 1 {
		t.Errorf("unknown_kid/ok refreshes = %d, want 1", ev.count("unknown_kid/ok"))
	}
}

func TestUnknownKIDStormIsBounded(t *testing.T) {
	k := newSigner(t, "RS256", "k1")
	v, js, ev := remoteFixture(t, keys.KeyOptions{RefetchCooldown: time.Hour}, k)
	before := js.fetches.Load()
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := k.WithKID(fmt.Sprintf("random-%d", i)).Sign(t, claims(issA))
			if _, err := v.Verify(context.Background(), bearer(tok)); reasonOf(err) != verifier.UnknownKey {
				t.Errorf("reason = %q, want unknown_key", reasonOf(err))
			}
		}()
	}
	wg.Wait()
	// However the 500 arrived (all joined to the one refetch in flight, or
	// some after it), one more unknown kid now, after that refetch, must be
	// refused by the cooldown rather than fetch again.
	tok := k.WithKID("random-after").Sign(t, claims(issA))
	if _, err := v.Verify(t.Context(), bearer(tok)); reasonOf(err) != verifier.UnknownKey {
		t.Errorf("reason = %q, want unknown_key", reasonOf(err))
	}
	if got := js.fetches.Load() - before; got > 1 {
		t.Errorf("501 random kids caused %d fetches, want at most 1 per cooldown", got)
	}
	if ev.count("unknown_kid/cooldown") == 0 {
		t.Error("no refetch was refused by the cooldown")
	}
}

func TestRequestWaitIsBounded(t *testing.T) {
	k, next := newSigner(t, "RS256", "k1"), newSigner(t, "RS256", "k2")
	v, js, _ := remoteFixture(t, keys.KeyOptions{RefetchCooldown: time.Hour, MaxWait: 50 * time.Millisecond, FetchTimeout: time.Minute}, k)
	release := make(chan struct{})
	js.blockWith(release)
	defer close(release)
	// The refetch hangs until release; the request must give up on its own
	// (MaxWait), and the fetch must still be in flight when it does.
	before := js.fetches.Load()
	_, err := v.Verify(t.Context(), bearer(next.Sign(t, claims(issA))))
	if reasonOf(err) != verifier.UnknownKey {
		t.Errorf("reason = %q, want unknown_key", reasonOf(err))
	}
	if got := js.fetches.Load() - before; got != 1 {
		t.Errorf("fetches started = %d, want 1 (still blocked)", got)
	}
}

func TestIssuerDownKeepsCachedKeys(t *testing.T) {
	k := newSigner(t, "RS256", "k1")
	js := newJWKSServer(t, jwksJSON(t, k))
	ev := &keyEvents{}
	src := keys.NewRemoteSource(js.URL, []string{issA}, nil)
	keys := mustKeys(t, keys.KeyOptions{RefetchCooldown: time.Nanosecond, MaxBytes: 4096}, ev, src)
	load(t, keys)
	v := mustVerifier(t, verifier.Options{Keys: keys}) // no token cache: every call verifies
	tok := k.Sign(t, claims(issA))

	tests := []struct {
		name       string
		status     int
		body       []byte
		wantResult string
	}{
		{name: "server error", status: http.StatusInternalServerError, body: []byte("oops"), wantResult: "error"},
		{name: "garbage", status: http.StatusOK, body: []byte("<html>"), wantResult: "invalid"},
		{name: "no keys member", status: http.StatusOK, body: []byte(`{}`), wantResult: "invalid"},
		{name: "empty set", status: http.StatusOK, body: []byte(`{"keys":[]}`), wantResult: "empty"},
		{name: "only unusable keys", status: http.StatusOK, body: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), wantResult: "empty"},
		{name: "oversized", status: http.StatusOK, body: []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 5000) + `"}`), wantResult: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js.serve(tt.status, tt.body)
			before := ev.count("unknown_kid/" + tt.wantResult)
			// An unknown kid forces a refetch through the same path as the
			// background refresh.
			other := k.WithKID("other").Sign(t, claims(issA))
			if _, err := v.Verify(t.Context(), bearer(other)); reasonOf(err) != verifier.UnknownKey {
				t.Errorf("unknown kid: reason = %q", reasonOf(err))
			}
			if got := ev.count("unknown_kid/"+tt.wantResult) - before; got != 1 {
				t.Errorf("refresh results %q = %d, want 1", tt.wantResult, got)
			}
			if _, err := v.Verify(t.Context(), bearer(tok)); err != nil {
				t.Errorf("cached key no longer verifies: %v", err)
			}
			if !keys.Ready() {
				t.Error("not ready while cached keys serve")
			}
			if n := src.KeyCount(); n != 1 {
				t.Errorf("keys = %d, want 1", n)
			}
		})
	}
}

func TestIssuerDownAtStart(t *testing.T) {
	js := newJWKSServer(t, nil)
	js.serve(http.StatusServiceUnavailable, nil)
	keys := mustKeys(t, keys.KeyOptions{RefetchCooldown: time.Nanosecond}, nil, keys.NewRemoteSource(js.URL, []string{issA}, nil))
	if err := keys.LoadOnce(t.Context()); err == nil {
		t.Fatal("LoadOnce succeeded against a down issuer")
	}
	if keys.Ready() {
		t.Error("ready with no keys")
	}
	v := mustVerifier(t, verifier.Options{Keys: keys})
	tok := newSigner(t, "RS256", "k1").Sign(t, claims(issA))
	// No keys yet: the contract's answer is unknown_key.
	if _, err := v.Verify(t.Context(), bearer(tok)); reasonOf(err) != verifier.UnknownKey {
		t.Errorf("reason = %q, want unknown_key", reasonOf(err))
	}
	if h := keys.Health(time.Now()); h.State != "no_keys" {
		t.Errorf("health = %+v, want no_keys", h)
	}
	// Up: fresh. Down again: the keys serve, stale, with their age.
	k1 := newSigner(t, "RS256", "k1")
	js.serve(http.StatusOK, jwksJSON(t, k1))
	if err := keys.LoadOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h := keys.Health(time.Now()); h.State != "fresh" || h.Keys != 1 {
		t.Errorf("health = %+v, want fresh with 1 key", h)
	}
	js.serve(http.StatusServiceUnavailable, nil)
	// An unknown kid makes the source refetch, which fails.
	if _, err := v.Verify(t.Context(), bearer(newSigner(t, "RS256", "k2").Sign(t, claims(issA)))); reasonOf(err) != verifier.UnknownKey {
		t.Errorf("unknown kid with keys loaded: reason %q, want unknown_key", reasonOf(err))
	}
	if h := keys.Health(time.Now().Add(time.Minute)); h.State != "stale" || h.Keys != 1 || h.Age < time.Minute {
		t.Errorf("health = %+v, want stale with 1 key, a minute old", h)
	}
	if _, err := v.Verify(t.Context(), bearer(k1.Sign(t, claims(issA)))); err != nil {
		t.Errorf("stale keys still verify: %v", err)
	}
}

func TestCacheDirServesAfterRestartWhileIssuerDown(t *testing.T) {
	dir := t.TempDir()
	k := newSigner(t, "ES256", "k1")
	js := newJWKSServer(t, jwksJSON(t, k))
	opts := keys.KeyOptions{CacheDir: dir}
	first := mustKeys(t, opts, nil, keys.NewRemoteSource(js.URL, []string{issA}, nil))
	load(t, first)
	files, _ := filepath.Glob(filepath.Join(dir, "jwks-*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files = %v, want one", files)
	}

	js.serve(http.StatusBadGateway, nil) // the issuer goes down, the sidecar restarts
	ev := &keyEvents{}
	second := mustKeys(t, opts, ev, keys.NewRemoteSource(js.URL, []string{issA}, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- second.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "ready from the cache dir", second.Ready)
	v := mustVerifier(t, verifier.Options{Keys: second})
	if _, err := v.Verify(t.Context(), bearer(k.Sign(t, claims(issA)))); err != nil {
		t.Errorf("after a restart with the issuer down: %v", err)
	}
	if ev.count("start/from_disk") != 1 {
		t.Errorf("from_disk loads = %d, want 1", ev.count("start/from_disk"))
	}
}

// oidcServer serves a discovery document whose issuer is given, and a JWKS.
func oidcServer(t *testing.T, issuer func(self string) string, signers ...signer) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": issuer(srv.URL), "jwks_uri": srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) { w.Write(jwksJSON(t, signers...)) })
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestOIDCDiscovery(t *testing.T) {
	ka, kb := newSigner(t, "RS256", "a1"), newSigner(t, "RS256", "b1")
	a := oidcServer(t, func(self string) string { return self }, ka)
	b := oidcServer(t, func(self string) string { return self }, kb)
	keys := mustKeys(t, keys.KeyOptions{RefetchCooldown: time.Hour}, nil,
		keys.NewOIDCSource(a.URL, nil), keys.NewOIDCSource(b.URL, nil))
	load(t, keys)
	v := mustVerifier(t, verifier.Options{Keys: keys})
	tests := []struct {
		name       string
		token      string
		wantReason verifier.Reason
	}{
		{name: "A's token, A's key", token: ka.Sign(t, claims(a.URL))},
		{name: "B's token, B's key", token: kb.Sign(t, claims(b.URL))},
		{name: "B's iss signed with A's key", token: ka.Sign(t, claims(b.URL)), wantReason: verifier.UnknownKey},
		{name: "A's iss signed with B's key", token: kb.Sign(t, claims(a.URL)), wantReason: verifier.UnknownKey},
		{name: "A's iss with a trailing slash", token: ka.Sign(t, claims(a.URL+"/")), wantReason: verifier.BadIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), bearer(tt.token))
			if got := reasonOf(err); got != tt.wantReason {
				t.Errorf("reason = %q, want %q (%v)", got, tt.wantReason, err)
			}
		})
	}
}

func TestOIDCIssuerMustMatchExactly(t *testing.T) {
	k := newSigner(t, "RS256", "a1")
	srv := oidcServer(t, func(self string) string { return self + "/" }, k)
	keys := mustKeys(t, keys.KeyOptions{}, nil, keys.NewOIDCSource(srv.URL, nil))
	err := keys.LoadOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "does not equal") {
		t.Errorf("discovery with issuer %q for %q: err = %v, want a mismatch", srv.URL+"/", srv.URL, err)
	}
	if keys.Ready() {
		t.Error("ready after a failed discovery")
	}
}

func TestWithdrawnKeyInvalidatesCachedTokens(t *testing.T) {
	k1, k2 := newSigner(t, "RS256", "k1"), newSigner(t, "RS256", "k2")
	js := newJWKSServer(t, jwksJSON(t, k1, k2))
	src := keys.NewRemoteSource(js.URL, []string{issA}, nil)
	keys := mustKeys(t, keys.KeyOptions{RefetchCooldown: time.Hour}, nil, src)
	load(t, keys)
	v := mustVerifier(t, verifier.Options{Keys: keys, CacheSize: 100})
	tok := k1.Sign(t, claims(issA))
	if _, err := v.Verify(t.Context(), bearer(tok)); err != nil {
		t.Fatal(err)
	}
	// The issuer withdraws k1 (compromised). A refetch, here forced by an
	// unknown kid, must also end the cached acceptance of k1's tokens.
	js.serve(http.StatusOK, jwksJSON(t, k2))
	if _, err := v.Verify(t.Context(), bearer(k2.WithKID("k3").Sign(t, claims(issA)))); reasonOf(err) != verifier.UnknownKey {
		t.Fatalf("reason = %q, want unknown_key", reasonOf(err))
	}
	if _, err := v.Verify(t.Context(), bearer(tok)); reasonOf(err) != verifier.UnknownKey {
		t.Errorf("cached token of a withdrawn key: reason = %q, want unknown_key", reasonOf(err))
	}
}

func TestFileSourceReloads(t *testing.T) {
	k1, k2 := newSigner(t, "EdDSA", "k1"), newSigner(t, "EdDSA", "k2")
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, k1), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := mustKeys(t, keys.KeyOptions{RefetchCooldown: time.Nanosecond}, nil, keys.NewFileSource(path, []string{issA}))
	load(t, keys)
	v := mustVerifier(t, verifier.Options{Keys: keys})
	if _, err := v.Verify(t.Context(), bearer(k1.Sign(t, claims(issA)))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, jwksJSON(t, k2), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), bearer(k2.Sign(t, claims(issA)))); err != nil {
		t.Errorf("after the file changed: %v", err)
	}
	if _, err := v.Verify(t.Context(), bearer(k1.Sign(t, claims(issA)))); reasonOf(err) != verifier.UnknownKey {
		t.Errorf("removed key: reason = %q, want unknown_key", reasonOf(err))
	}
}

func TestReadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := keys.ReadHMACSecret(write("short", "tooshort\n")); err == nil {
		t.Error("a short HMAC secret was accepted")
	}
	secret, err := keys.ReadHMACSecret(write("ok", strings.Repeat("k", 32)+"\n"))
	if err != nil || len(secret) != 32 {
		t.Errorf("secret = %d bytes, %v; want 32 bytes (newline dropped)", len(secret), err)
	}
	der, err := x509.MarshalPKIXPublicKey(newSigner(t, "ES256", "").Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	// A real public key reads, so the refusals below are about their files.
	if got, err := keys.ReadPublicKeys(write("pub.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))); err != nil || len(got) != 1 {
		t.Errorf("a PEM public key: %d keys, %v; want 1", len(got), err)
	}
	if _, err := keys.ReadPublicKeys(write("none.pem", "not pem")); err == nil {
		t.Error("a file without PEM was accepted")
	}
	if _, err := keys.ReadPublicKeys(write("priv.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Error("a private key was accepted as a public key file")
	}
}

// TestKeyWithoutKIDVerifiesAnyKID: a kid is only a hint (RFC 7515 §4.1.4).
// A key published without one (a PEM file, an HMAC secret) is tried for a
// token whose kid no keyed entry has, so a PUBLIC_KEY_FILES user is not
// refused unknown_key because the issuer names its keys; the signature
// still decides, and a flood of random kids leaves no trace behind.
func TestKeyWithoutKIDVerifiesAnyKID(t *testing.T) {
	k, other := newSigner(t, "ES256", "issuer-named-kid"), newSigner(t, "ES256", "k2")
	src, err := keys.NewStaticSource("pem", []string{issA}, []keys.StaticKey{{Key: k.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	keys := mustKeys(t, keys.KeyOptions{}, nil, src)
	load(t, keys)
	v := mustVerifier(t, verifier.Options{Keys: keys})
	if _, err := v.Verify(t.Context(), bearer(k.Sign(t, claims(issA)))); err != nil {
		t.Errorf("token with a kid, PEM key without one: %v", err)
	}
	if _, err := v.Verify(t.Context(), bearer(k.WithKID("").Sign(t, claims(issA)))); err != nil {
		t.Errorf("token without a kid: %v", err)
	}
	if _, err := v.Verify(t.Context(), bearer(other.Sign(t, claims(issA)))); reasonOf(err) != verifier.BadSignature {
		t.Errorf("another key's token: reason %q, want bad_signature", reasonOf(err))
	}
	// An RS256 token finds no kid-less key of its type: unknown_key.
	rsa := newSigner(t, "RS256", "r1")
	if _, err := v.Verify(t.Context(), bearer(rsa.Sign(t, claims(issA)))); reasonOf(err) != verifier.UnknownKey {
		t.Errorf("RS256 token, only an EC key: reason %q, want unknown_key", reasonOf(err))
	}
}

// TestNewKIDBeatsKeyWithoutKID: kid-less keys are tried only after the
// unknown-kid refetch, so an issuer that publishes a named key beside an
// old kid-less one still gets its new key used, not a bad_signature.
func TestNewKIDBeatsKeyWithoutKID(t *testing.T) {
	old, next := newSigner(t, "ES256", ""), newSigner(t, "ES256", "k2")
	v, js, _ := remoteFixture(t, keys.KeyOptions{RefetchCooldown: time.Hour}, old)
	js.serve(http.StatusOK, jwksJSON(t, old, next))
	before := js.fetches.Load()
	if _, err := v.Verify(t.Context(), bearer(next.Sign(t, claims(issA)))); err != nil {
		t.Fatalf("token with the newly published kid: %v", err)
	}
	if got := js.fetches.Load() - before; got != 1 {
		t.Errorf("fetches = %d, want 1 (the unknown-kid refetch)", got)
	}
	if _, err := v.Verify(t.Context(), bearer(old.WithKID("anything").Sign(t, claims(issA)))); err != nil {
		t.Errorf("the kid-less key, token naming another kid: %v", err)
	}
}

// TestEmptyKIDIsNoKID: an explicit "kid":"" names no key, so it is looked
// up as a token without a kid. One such token must not narrow what later
// tokens without a kid are verified with: with two PEM keys (a rotation),
// a token signed by the second still verifies.
func TestEmptyKIDIsNoKID(t *testing.T) {
	k1, k2 := newSigner(t, "ES256", ""), newSigner(t, "ES256", "")
	src, err := keys.NewStaticSource("pem", []string{issA}, []keys.StaticKey{{Key: k1.Key.Public()}, {Key: k2.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	keys := mustKeys(t, keys.KeyOptions{}, nil, src)
	load(t, keys)
	v := mustVerifier(t, verifier.Options{Keys: keys})
	empty := map[string]any{"kid": ""}
	for _, tok := range []string{k1.SignWith(t, claims(issA), empty), k2.SignWith(t, claims(issA), empty), k2.Sign(t, claims(issA)), k1.Sign(t, claims(issA))} {
		if _, err := v.Verify(t.Context(), bearer(tok)); err != nil {
			t.Errorf("%v", err)
		}
	}
}
