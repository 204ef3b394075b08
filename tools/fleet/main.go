// Command fleet simulates a fleet of sidecars refreshing one issuer's keys,
// all in one process on 127.0.0.1 (docs/kubernetes.md, "Keys without a
// fetch storm"). Each sidecar is a real keys.Keys with its own remote
// source; the issuer is a real JWKS endpoint that counts what it serves.
// Time is scaled: -interval stands for JWKS_REFRESH_INTERVAL (5m) and the
// figures are converted back to real minutes. A second table restarts every
// sidecar at once (the restart storm), with and without JWKS_CACHE_DIR.
//
//	go run ./tools/fleet -sidecars 1000
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
)

const iss = "https://issuer.example"

// issuer is a JWKS endpoint; conditional decides whether it sends ETag and
// answers 304.
type issuer struct {
	mu          sync.Mutex
	signers     []signer
	body        []byte
	conditional bool
	maxAge      int // Cache-Control max-age in seconds; 0 sends none
	requests    atomic.Int64
	full        atomic.Int64
	bytes       atomic.Int64
}

type signer struct {
	kid string
	key *ecdsa.PrivateKey
}

func newSigner(kid string) signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return signer{kid: kid, key: k}
}

func (i *issuer) add(s signer) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.signers = append(i.signers, s)
	var ks []any
	for _, s := range i.signers {
		j, err := jwkset.NewJWKFromKey(s.key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: s.kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
		if err != nil {
			panic(err)
		}
		ks = append(ks, j.Marshal())
	}
	i.body, _ = json.Marshal(map[string]any{"keys": ks})
}

func (i *issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.requests.Add(1)
	i.mu.Lock()
	body := i.body
	i.mu.Unlock()
	if i.maxAge > 0 {
		w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(i.maxAge))
	}
	if i.conditional {
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	i.full.Add(1)
	i.bytes.Add(int64(len(body)))
	_, _ = w.Write(body)
}

func (i *issuer) reset() { i.requests.Store(0); i.full.Store(0); i.bytes.Store(0) }

func token(s signer) *jwt.Token {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": iss, "exp": time.Now().Add(time.Hour).Unix()})
	t.Header["kid"] = s.kid
	raw, err := t.SignedString(s.key)
	if err != nil {
		panic(err)
	}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		panic(err)
	}
	return tok
}

type result struct {
	mode                  string
	reqPerMin, fullPerMin float64
	kbPerMin              float64
	passive               time.Duration // scaled to real time
	active                time.Duration // real time
	activeRequests        int64
}

func main() {
	n := flag.Int("sidecars", 1000, "key sources (one per simulated sidecar)")
	interval := flag.Duration("interval", time.Second, "simulated JWKS_REFRESH_INTERVAL (stands for 5m)")
	rounds := flag.Int("rounds", 6, "steady-state intervals measured")
	flag.Parse()
	scale := float64(5*time.Minute) / float64(*interval)
	fmt.Printf("%d sidecars, one issuer, JWKS_REFRESH_INTERVAL=5m (simulated as %s), JWKS_REFETCH_COOLDOWN=30s\n\n", *n, *interval)
	fmt.Println("| mode | issuer requests/min per 1,000 sidecars | full answers (200)/min | KiB/min | rotated key at every sidecar, no traffic | rotated key at every sidecar, tokens with the new kid | issuer requests for that rotation |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, mode := range []string{"unconditional", "conditional", "relay"} {
		r := simulate(mode, *n, *interval, *rounds, scale)
		per := 1000 / float64(*n)
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %s | %s | %d |\n", r.mode, r.reqPerMin*per, r.fullPerMin*per, r.kbPerMin*per,
			r.passive.Round(time.Second), r.active.Round(time.Millisecond), r.activeRequests)
	}
	fmt.Printf("\nEvery one of the %d sidecars restarted at once (their containers, cache directories kept), ETags on:\n\n", *n)
	fmt.Println("| mode | issuer requests | full answers (200) | KiB from the issuer | relay answers 200 / 304 | every sidecar current after |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, mode := range []string{restartNoCache, restartCache, restartMaxAge, restartRelay} {
		r := restartStorm(mode, *n)
		fmt.Printf("| %s | %d | %d | %.1f | %s | %s |\n", r.mode, r.requests, r.full, r.kb, r.relay, r.took.Round(time.Millisecond))
	}
}

// The modes of the restart storm.
const (
	restartNoCache = "no JWKS_CACHE_DIR"
	restartCache   = "JWKS_CACHE_DIR (key set and validators kept)"
	restartRelay   = "relay, JWKS_CACHE_DIR"
	restartMaxAge  = "JWKS_CACHE_DIR, the issuer sends max-age=300"
)

type restartResult struct {
	mode           string
	requests, full int64
	kb             float64
	relay          string
	took           time.Duration
}

// startCounter counts the start refreshes that reached an answer.
// With fresh, a key set loaded from disk that its max-age still covers
// counts: such a sidecar is current without a fetch.
type startCounter struct {
	n     atomic.Int64
	fresh bool
}

func (c *startCounter) KeyRefresh(_, trigger, result string) {
	if trigger == keys.TriggerStart && (result == keys.RefreshOK || result == keys.RefreshNotModified || c.fresh && result == keys.RefreshFromDisk) {
		c.n.Add(1)
	}
}
func (c *startCounter) KeysLoaded(string, int, time.Time) {}

// relayCounter counts the relay's answers by status.
type relayCounter struct{ ok, notModified atomic.Int64 }

func (c *relayCounter) RelayRequest(_, status, _ string) {
	switch status {
	case "200":
		c.ok.Add(1)
	case "304":
		c.notModified.Add(1)
	}
}

// restartStorm starts n sidecars, stops them all, and counts what starting
// them again costs the issuer.
func restartStorm(mode string, n int) restartResult {
	is := &issuer{conditional: true}
	if mode == restartMaxAge {
		is.maxAge = 300
	}
	is.add(newSigner("k1"))
	idp := httptest.NewServer(is)
	defer idp.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	base, err := os.MkdirTemp("", "fleet-restart-")
	must(err)
	defer os.RemoveAll(base)
	opts := keys.KeyOptions{RefreshInterval: time.Hour, FetchTimeout: 10 * time.Second, MaxWait: 5 * time.Second}
	relayed := &relayCounter{}
	if mode == restartRelay {
		ropts := opts
		ropts.CacheDir = filepath.Join(base, "relay")
		src := keys.NewRemoteSource(idp.URL+"/jwks", nil, client)
		rk, err := keys.NewKeys(ropts, nil, nil, src)
		must(err)
		must(rk.LoadOnce(context.Background()))
		relay := keys.NewRelay(src)
		relay.Recorder = relayed
		rs := httptest.NewServer(relay)
		defer rs.Close()
		opts.RelayURL = rs.URL
	}
	start := func() time.Duration {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := &startCounter{fresh: mode == restartMaxAge}
		var wg sync.WaitGroup
		begin := time.Now()
		for i := range n {
			o := opts
			if mode != restartNoCache {
				o.CacheDir = filepath.Join(base, strconv.Itoa(i))
			}
			k, err := keys.NewKeys(o, rec, nil, keys.NewRemoteSource(idp.URL+"/jwks", []string{iss}, client))
			must(err)
			wg.Go(func() { _ = k.Run(ctx) })
		}
		for deadline := time.Now().Add(time.Minute); rec.n.Load() < int64(n); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "timed out waiting for the fleet to start")
				os.Exit(1)
			}
		}
		took := time.Since(begin)
		cancel()
		wg.Wait()
		return took
	}
	start()
	is.reset()
	relayed.ok.Store(0)
	relayed.notModified.Store(0)
	took := start()
	r := restartResult{mode: mode, requests: is.requests.Load(), full: is.full.Load(), kb: float64(is.bytes.Load()) / 1024, took: took, relay: "-"}
	if mode == restartRelay {
		r.relay = fmt.Sprintf("%d / %d", relayed.ok.Load(), relayed.notModified.Load())
	}
	return r
}

func simulate(mode string, n int, interval time.Duration, rounds int, scale float64) result {
	is := &issuer{conditional: mode != "unconditional"}
	is.add(newSigner("k1"))
	idp := httptest.NewServer(is)
	defer idp.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cooldown := time.Duration(float64(30*time.Second) / scale)
	opts := keys.KeyOptions{RefreshInterval: interval, RefetchCooldown: cooldown, MaxWait: 5 * time.Second, FetchTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	if mode == "relay" {
		src := keys.NewRemoteSource(idp.URL+"/jwks", nil, client)
		rk, err := keys.NewKeys(opts, nil, nil, src)
		must(err)
		must(rk.LoadOnce(ctx))
		rs := httptest.NewServer(keys.NewRelay(src))
		defer rs.Close()
		wg.Go(func() { _ = rk.Run(ctx) })
		opts.RelayURL = rs.URL
	}
	fleet := make([]*keys.Keys, n)
	for i := range fleet {
		k, err := keys.NewKeys(opts, nil, nil, keys.NewRemoteSource(idp.URL+"/jwks", []string{iss}, client))
		must(err)
		fleet[i] = k
		wg.Go(func() { _ = k.Run(ctx) })
	}
	waitAll(fleet, 1, time.Minute)
	// Steady state.
	is.reset()
	start := time.Now()
	time.Sleep(time.Duration(rounds) * interval)
	elapsed := time.Since(start)
	simMin := elapsed.Minutes() * scale
	r := result{mode: mode, reqPerMin: float64(is.requests.Load()) / simMin, fullPerMin: float64(is.full.Load()) / simMin,
		kbPerMin: float64(is.bytes.Load()) / 1024 / simMin}

	// A rotation nobody has seen a token of: the refresh carries it.
	is.add(newSigner("k2"))
	start = time.Now()
	waitAll(fleet, 2, 10*interval)
	r.passive = time.Duration(float64(time.Since(start)) * scale)

	// A rotation whose tokens reach every sidecar at once: the unknown-kid
	// refetch carries it.
	time.Sleep(cooldown) // past the cooldown of any earlier refetch
	s3 := newSigner("k3")
	is.add(s3)
	is.reset()
	tok := token(s3)
	start = time.Now()
	var got sync.WaitGroup
	for _, k := range fleet {
		got.Go(func() {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(cooldown / 4) {
				if _, err := k.Key(ctx, iss, s3.kid, "ES256", tok); err == nil {
					return
				}
			}
			fmt.Fprintln(os.Stderr, "a sidecar never got the rotated key")
		})
	}
	got.Wait()
	r.active = time.Since(start)
	r.activeRequests = is.requests.Load()
	cancel()
	wg.Wait()
	return r
}

// waitAll waits until every sidecar holds want keys.
func waitAll(fleet []*keys.Keys, want int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, k := range fleet {
		for k.Sources()[0].KeyCount() < want {
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "timed out waiting for the fleet to load")
				os.Exit(1)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
