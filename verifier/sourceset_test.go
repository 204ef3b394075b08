package verifier_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// waitUntil polls cond until it holds, for at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond) // the poll interval, not a wait for readiness
	}
}

func TestSourceSetKeepsUnchangedSources(t *testing.T) {
	k1 := newSigner(t, "ES256", "k1")
	js := newJWKSServer(t, jwksJSON(t, k1))
	set := keys.NewSourceSet(keys.KeyOptions{RefreshInterval: time.Hour}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- set.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	opts := keys.KeyOptions{RefreshInterval: time.Hour}

	// Generation 1: one remote source.
	gen1 := set.Plan([]*keys.Source{keys.NewRemoteSource(js.URL, []string{issA}, nil)})
	keys1 := mustKeys(t, opts, nil, gen1...)
	load(t, keys1)
	set.Apply(gen1)
	v1 := mustVerifier(t, verifier.Options{Keys: keys1, CacheSize: 10})
	tok := k1.Sign(t, claims(issA))
	if _, err := v1.VerifyToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	fetches := js.fetches.Load()

	// Generation 2 names the same source (a new object with the same
	// definition) and a file source: the running one is kept, with its
	// keys, and is not fetched again.
	gen2 := set.Plan([]*keys.Source{
		keys.NewRemoteSource(js.URL, []string{issA}, nil),
		keys.NewFileSource(writeJWKS(t, k1), []string{issB}),
	})
	if gen2[0] != gen1[0] {
		t.Fatal("an unchanged source was not kept")
	}
	keys2 := mustKeys(t, opts, nil, gen2[0])
	v2 := mustVerifier(t, verifier.Options{Keys: keys2, CacheSize: 10})
	if _, err := v2.VerifyToken(ctx, tok); err != nil {
		t.Errorf("the kept source's cached keys: %v", err)
	}
	set.Apply(gen2)
	waitUntil(t, "the file source loads", set.Ready)
	if got := js.fetches.Load(); got != fetches {
		t.Errorf("the kept source was fetched %d more times, want 0", got-fetches)
	}

	// A key withdrawn from the shared source invalidates the token caches
	// of both generations' verifiers.
	if _, err := v2.VerifyToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	k2 := newSigner(t, "ES256", "k2")
	js.serve(200, jwksJSON(t, k2))
	// k2's unknown kid makes the source refetch, and k1 is gone.
	if _, err := v2.VerifyToken(ctx, k2.Sign(t, claims(issA))); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*verifier.Verifier{"generation 1": v1, "generation 2": v2} {
		if _, err := v.VerifyToken(ctx, tok); reasonOf(err) != verifier.UnknownKey {
			t.Errorf("%s after the key was withdrawn: %v, want unknown_key", name, err)
		}
	}

	// Generation 3 drops the remote source: its refresh loop stops; the
	// file source's keeps running.
	set.Apply(gen2[1:])
	waitUntil(t, "the removed source stops", func() bool { return set.Running() == 1 })
	if set.Len() != 1 {
		t.Errorf("set holds %d sources, want 1", set.Len())
	}
	set.Apply(nil)
	waitUntil(t, "every source stops", func() bool { return set.Running() == 0 })
}

func TestSourceSetSharesOneDefinition(t *testing.T) {
	k1 := newSigner(t, "ES256", "k1")
	js := newJWKSServer(t, jwksJSON(t, k1))
	set := keys.NewSourceSet(keys.KeyOptions{RefreshInterval: time.Hour}, nil, nil)
	got := set.Plan([]*keys.Source{
		keys.NewRemoteSource(js.URL, []string{issA}, nil),
		keys.NewRemoteSource(js.URL, []string{issA}, nil),
		keys.NewRemoteSource(js.URL, []string{issB}, nil), // another binding: another source
	})
	if got[0] != got[1] || got[0] == got[2] {
		t.Errorf("plan = %p %p %p; want the first two shared and the third apart", got[0], got[1], got[2])
	}
}

func writeJWKS(t *testing.T, signers ...signer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, signers...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSourceSetReadinessAfterReload: every source of the start gates
// readiness; a source a reload adds to a ready set does not (its issuer
// down must not take the pod out of its Service), while one added to a set
// that is not ready yet does.
func TestSourceSetReadinessAfterReload(t *testing.T) {
	k1 := newSigner(t, "ES256", "k1")
	up := newJWKSServer(t, jwksJSON(t, k1))
	down := newJWKSServer(t, nil)
	down.serve(http.StatusServiceUnavailable, nil)
	opts := keys.KeyOptions{RefreshInterval: time.Hour}

	set := keys.NewSourceSet(opts, nil, nil)
	start := set.Plan([]*keys.Source{keys.NewRemoteSource(down.URL, []string{issB}, nil)})
	set.Apply(start)
	if set.Ready() {
		t.Fatal("ready before the start's source has keys")
	}
	// A reload while not ready: the new source gates too.
	notYet := set.Plan([]*keys.Source{start[0], keys.NewRemoteSource(up.URL, []string{issA}, nil)})
	set.Apply(notYet)
	load(t, mustKeys(t, opts, nil, notYet[1]))
	if set.Ready() {
		t.Fatal("ready while the start's source has no keys")
	}

	set = keys.NewSourceSet(opts, nil, nil)
	first := set.Plan([]*keys.Source{keys.NewRemoteSource(up.URL, []string{issA}, nil)})
	load(t, mustKeys(t, opts, nil, first...))
	set.Apply(first)
	if !set.Ready() {
		t.Fatal("not ready with the start's keys loaded")
	}
	// A reload adds a source whose issuer is down: still ready.
	added := set.Plan([]*keys.Source{first[0], keys.NewRemoteSource(down.URL, []string{issB}, nil)})
	set.Apply(added)
	if !set.Ready() {
		t.Error("a source added by a reload made a ready set unready")
	}
	if h := added[1].Health(time.Now()); h.State != keys.StateNoKeys {
		t.Errorf("the added source: %+v, want no_keys", h)
	}
}
