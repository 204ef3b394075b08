package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// start runs k until the returned stop is called (or the test ends).
func start(t *testing.T, k *keys.Keys) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = k.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// The restart storm: a sidecar restarted with JWKS_CACHE_DIR asks the
// issuer conditionally, with the validators its previous run was served,
// so a restarted fleet costs 304s instead of a full key set each. With an
// ETag, and with Last-Modified alone.
func TestRestartIsConditional(t *testing.T) {
	for _, noETag := range []bool{false, true} {
		const iss = "https://issuer.example"
		a := jwttest.NewSigner(t, "ES256", "a")
		i := newIDP(t, jwttest.JWKS(t, a))
		i.noETag = noETag
		dir := t.TempDir()
		opts := keys.KeyOptions{CacheDir: dir, RefreshInterval: time.Hour}

		first, err := keys.NewKeys(opts, nil, nil, keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
		if err != nil {
			t.Fatal(err)
		}
		stop := start(t, first)
		eventually(t, "the first run's keys", first.Ready)
		stop()

		// The restarts of three sidecars sharing the directory (as one pod's
		// restarts share its emptyDir).
		for n := range 3 {
			rec := &results{}
			k, err := keys.NewKeys(opts, rec, nil, keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
			if err != nil {
				t.Fatal(err)
			}
			stop := start(t, k)
			eventually(t, "the conditional start fetch", func() bool { return rec.get(keys.RefreshNotModified) == 1 })
			stop()
			if rec.get(keys.RefreshFromDisk) != 1 || rec.get(keys.RefreshOK) != 0 {
				t.Errorf("noETag=%t, restart %d: from_disk %d, ok %d; want 1 and 0", noETag, n, rec.get(keys.RefreshFromDisk), rec.get(keys.RefreshOK))
			}
			if _, err := keyFor(t, k, iss, a); err != nil {
				t.Errorf("noETag=%t, restart %d: %v", noETag, n, err)
			}
		}
		if full, notMod := i.full.Load(), i.notMod.Load(); full != 1 || notMod != 3 {
			t.Errorf("noETag=%t: the issuer answered %d full and %d 304; want 1 and 3", noETag, full, notMod)
		}

		// A rotation meanwhile: the validators no longer match, the restart
		// gets the new set and keeps its validators in turn.
		b := jwttest.NewSigner(t, "RS256", "b")
		i.rotate(jwttest.JWKS(t, a, b))
		for _, want := range []string{keys.RefreshOK, keys.RefreshNotModified} {
			rec := &results{}
			k, err := keys.NewKeys(opts, rec, nil, keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
			if err != nil {
				t.Fatal(err)
			}
			stop := start(t, k)
			eventually(t, "the start fetch: "+want, func() bool { return rec.get(want) == 1 })
			stop()
			if n := k.Sources()[0].KeyCount(); n != 2 {
				t.Errorf("noETag=%t: %d keys after the rotation, want 2", noETag, n)
			}
		}
		if full, notMod := i.full.Load(), i.notMod.Load(); full != 2 || notMod != 4 {
			t.Errorf("noETag=%t, after a rotation: %d full and %d 304; want 2 and 4", noETag, full, notMod)
		}
	}
}

// Through a relay, the validators kept are the relay's: a restarted
// sidecar gets a 304 from the relay, and the issuer sees nothing.
func TestRestartThroughRelayIsConditional(t *testing.T) {
	const iss = "https://issuer.example"
	i := newIDP(t, jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a")))
	rs, _ := relay(t, keys.NewRemoteSource(i.URL+"/jwks", nil, nil))
	opts := keys.KeyOptions{CacheDir: t.TempDir(), RelayURL: rs.URL, RefreshInterval: time.Hour}
	for n := range 3 {
		rec := &results{}
		k, err := keys.NewKeys(opts, rec, nil, keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
		if err != nil {
			t.Fatal(err)
		}
		stop := start(t, k)
		want := keys.RefreshNotModified
		if n == 0 {
			want = keys.RefreshOK
		}
		eventually(t, "the start fetch: "+want, func() bool { return rec.get(want) == 1 })
		stop()
	}
	if got := i.full.Load() + i.notMod.Load(); got != 1 {
		t.Errorf("issuer requests = %d, want 1 (the relay's)", got)
	}
}

// The cache file keeps the key set byte for byte, with the validators and
// the URL they belong to; a bare key set written by an older version still
// loads (without validators: one full answer).
func TestCacheFileFormat(t *testing.T) {
	const iss = "https://issuer.example"
	body := jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a"))
	i := newIDP(t, body)
	dir := t.TempDir()
	k, err := keys.NewKeys(keys.KeyOptions{CacheDir: dir}, nil, nil, keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "jwks-*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files %v, want one", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		URL, ETag    string
		LastModified string `json:"last_modified"`
		Body         []byte
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.URL != i.URL+"/jwks" || !strings.HasPrefix(e.ETag, `"`) || e.LastModified == "" || !bytes.Equal(e.Body, body) {
		t.Errorf("cache entry url %q etag %q last_modified %q, body equal %t", e.URL, e.ETag, e.LastModified, bytes.Equal(e.Body, body))
	}

	// An older version's bare key set.
	if err := os.WriteFile(files[0], body, 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &results{}
	k, err = keys.NewKeys(keys.KeyOptions{CacheDir: dir, RefreshInterval: time.Hour}, rec, nil, keys.NewRemoteSource(i.URL+"/jwks", []string{iss}, nil))
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, k)
	eventually(t, "the start fetch", func() bool { return rec.get(keys.RefreshOK) == 1 })
	stop()
	if rec.get(keys.RefreshFromDisk) != 1 {
		t.Errorf("from_disk = %d, want 1: a bare key set is still a cache", rec.get(keys.RefreshFromDisk))
	}
}

// Loading from disk logs one line, the structured "keys loaded" with
// result from_disk, and no second one saying the same.
func TestDiskLoadLogsOnce(t *testing.T) {
	const iss = "https://issuer.example"
	i := newIDP(t, jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a")))
	dir := t.TempDir()
	first, err := keys.NewKeys(keys.KeyOptions{CacheDir: dir}, nil, nil, keys.NewRemoteSource(i.URL, []string{iss}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	var buf proctest.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	rec := &results{}
	k, err := keys.NewKeys(keys.KeyOptions{CacheDir: dir, RefreshInterval: time.Hour}, rec, log, keys.NewRemoteSource(i.URL, []string{iss}, nil))
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, k)
	eventually(t, "the conditional start fetch", func() bool { return rec.get(keys.RefreshNotModified) == 1 })
	stop()
	var loaded []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := rec["msg"].(string); strings.Contains(msg, "loaded") {
			loaded = append(loaded, rec)
		}
	}
	if len(loaded) != 1 || loaded[0]["msg"] != "keys loaded" || loaded[0]["result"] != keys.RefreshFromDisk || loaded[0]["keys"] != 1.0 {
		t.Errorf("load lines = %v, want one: keys loaded, result from_disk, keys 1", loaded)
	}
}
