// Package comparison runs stateless JWT verification and token
// introspection side by side on 127.0.0.1, with real binaries: jwt-issuer,
// echo-upstream, one jwt-sidecar per mode and jwt-loadgen driving both at
// the same rate. It measures a steady phase, then kills the issuer and
// keeps the load on (the outage), then restarts it (the recovery), and
// reads every number from the processes' own /metrics.
//
// `make compare` (tools/compare) and the last step of `make demo` use it.
package comparison

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/compare/relay"
	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

// The modes, as jwt-sidecar's AUTH_MODE and metric label mode.
const (
	ModeJWT           = "jwt"
	ModeIntrospection = "introspection"
)

// Job names, the same as the compose stack's services and Prometheus jobs.
const (
	jobIssuer   = "issuer"
	jobUpstream = "upstream"
	jobLoadgen  = "loadgen"
)

// sidecarJob is the job of the sidecar of mode.
func sidecarJob(mode string) string { return "sidecar-" + mode }

// audience is the aud of the comparison's tokens.
const audience = "compare-api"

// Options of one run.
type Options struct {
	Bin string // folder with jwt-issuer, echo-upstream, jwt-sidecar, jwt-loadgen
	Dir string // work folder: key, secrets, key cache, logs, raw scrapes

	Modes       []string // ModeJWT and/or ModeIntrospection
	Rate        float64  // requests per second per sidecar
	Concurrency int      // the load generator's requests in flight per sidecar, at most
	// Caches turns on each mode's cache: the jwt sidecar's verified-token
	// cache (TOKEN_CACHE_SIZE 10000) and the introspection cache
	// (INTROSPECTION_CACHE_TTL 60s). Off, every request is verified in full.
	Caches bool

	// RTT is the round trip between the sidecars and the token service:
	// a relay (package relay) in front of the issuer delays every request
	// and response by it. 0 is loopback, no relay.
	RTT time.Duration
	// RevocationInterval, when positive, gives the jwt sidecar the
	// issuer's revocation list (REVOCATION_LIST_URL, polled this often)
	// and adds a last phase: a probe token is revoked at the issuer and
	// each sidecar is asked until it refuses it.
	RevocationInterval time.Duration
	// SampleEvery, when positive, scrapes the load generator and the
	// sidecars this often for the timeline (Results.Timeline, the picture).
	SampleEvery time.Duration

	Phases
	ReadyTimeout time.Duration // per process

	Progress io.Writer // one line per step; nil for none
}

// Phases are how long each phase of a run lasts.
type Phases struct{ Warmup, Steady, Outage, Recovery time.Duration }

// Quick are the phases of a short run, `go run ./tools/compare -quick` and
// the demo's last step: enough to see the difference, far too short to
// quote.
var Quick = Phases{Warmup: time.Second, Steady: 3 * time.Second, Outage: 3 * time.Second, Recovery: 2 * time.Second}

// Validate reports every bad option at once.
func (o Options) Validate() error {
	var errs []error
	if len(o.Modes) == 0 {
		errs = append(errs, errors.New("modes: none given"))
	}
	for i, m := range o.Modes {
		if m != ModeJWT && m != ModeIntrospection {
			errs = append(errs, fmt.Errorf("modes: unknown mode %q (want %s or %s)", m, ModeJWT, ModeIntrospection))
		}
		if slices.Index(o.Modes, m) != i {
			errs = append(errs, fmt.Errorf("modes: %q given twice", m))
		}
	}
	if !(o.Rate > 0 && o.Rate <= 100_000) {
		errs = append(errs, errors.New("rate: want more than 0 and at most 100000 per second"))
	}
	if o.Concurrency < 1 {
		errs = append(errs, errors.New("concurrency: must be at least 1"))
	}
	for name, d := range map[string]time.Duration{"steady": o.Steady, "outage": o.Outage, "recovery": o.Recovery} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", name))
		}
	}
	if o.Warmup < 0 {
		errs = append(errs, errors.New("warmup: must not be negative"))
	}
	if o.RTT < 0 || o.RTT > 10*time.Second {
		errs = append(errs, errors.New("rtt: want 0 to 10s"))
	}
	if o.RevocationInterval < 0 || (o.RevocationInterval > 0 && o.RevocationInterval < 100*time.Millisecond) {
		errs = append(errs, errors.New("revocation interval: want 0 (off) or at least 100ms"))
	}
	if o.SampleEvery < 0 || (o.SampleEvery > 0 && o.SampleEvery < 100*time.Millisecond) {
		errs = append(errs, errors.New("sample: want 0 (off) or at least 100ms"))
	}
	if o.ReadyTimeout <= 0 {
		errs = append(errs, errors.New("ready timeout: must be positive"))
	}
	return errors.Join(errs...)
}

// SidecarModes returns the AUTH_MODE values the jwt-sidecar binary in bin
// offers, from its --help: jwt always, introspection when it documents
// INTROSPECTION_URL. The demo uses it to compare what the build can.
func SidecarModes(ctx context.Context, bin string) ([]string, error) {
	out, err := runCommand(ctx, proc.BinPath(bin, "jwt-sidecar"), "--help")
	if err != nil {
		return nil, fmt.Errorf("jwt-sidecar --help: %w: %s", err, out)
	}
	modes := []string{ModeJWT}
	if strings.Contains(out, "INTROSPECTION_URL") {
		modes = append(modes, ModeIntrospection)
	}
	return modes, nil
}

// stack is the running comparison: its processes and where they listen.
type stack struct {
	o      Options
	dir    string // absolute
	procs  []*process
	byJob  map[string]*process
	urls   map[string]string // job: base URL of its /metrics, /readyz
	target map[string]string // mode: the URL the load generator sends to
	snaps  int               // snapshots taken, for the scrape file names

	relay       *relay.Relay // in front of the issuer when RTT > 0
	probeSecret string       // the revocation probe's client secret

	// What the phases learn besides the snapshots.
	marks       Marks
	timeline    []Sample
	revocations map[string]*Revocation
}

func (s *stack) progress(format string, args ...any) {
	if s.o.Progress != nil {
		fmt.Fprintf(s.o.Progress, format+"\n", args...)
	}
}

// Run starts the stack, runs the phases, stops everything and returns the
// results. A process that fails to start or dies during the run (other
// than the issuer, on purpose) is an error.
func Run(ctx context.Context, o Options) (*Results, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s, err := start(ctx, o)
	if s != nil {
		defer s.stopAll()
	}
	if err != nil {
		return nil, err
	}
	measured, err := s.measureRTT(ctx)
	if err != nil {
		return nil, err
	}
	snaps, err := s.phases(ctx)
	if err != nil {
		return nil, err
	}
	s.stopAll()
	res := compute(snaps, s.modes(), o)
	res.Machine = describeMachine(proc.BinPath(s.o.Bin, "jwt-sidecar"))
	res.RTT.Measured = measured
	res.Marks, res.Timeline = s.marks, s.timeline
	for i, m := range res.Modes {
		res.Modes[i].Revocation = s.revocations[m.Mode]
	}
	res.Failures = append(res.Failures, res.checkRevocation()...)
	return res, nil
}

// modes pairs each mode with its job and target.
func (s *stack) modes() []modeSpec {
	var out []modeSpec
	for _, m := range s.o.Modes {
		out = append(out, modeSpec{mode: m, job: sidecarJob(m), target: s.target[m]})
	}
	return out
}

// start writes the key and the secrets and starts every process, each
// ready before the next.
func start(ctx context.Context, o Options) (s *stack, err error) {
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		return nil, err
	}
	o.Bin = bin
	for _, name := range []string{"jwt-issuer", "echo-upstream", "jwt-sidecar", "jwt-loadgen"} {
		if _, err := os.Stat(proc.BinPath(bin, name)); err != nil {
			return nil, fmt.Errorf("%s not found; build the binaries first (go build -o %s/ ./cmd/...)", proc.BinPath(bin, name), o.Bin)
		}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "scrapes"), 0o700); err != nil {
		return nil, fmt.Errorf("work folder: %w", err)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	s = &stack{o: o, dir: dir, byJob: map[string]*process{}, urls: map[string]string{}, target: map[string]string{}}

	// A key on disk: the restarted issuer signs and verifies with the same
	// key, as a real token service would after a restart.
	key := filepath.Join(dir, "issuer.key")
	if out, err := runCommand(ctx, proc.BinPath(bin, "jwt-issuer"), "genkey", "-alg", "RS256", "-out", key, "-force"); err != nil {
		return nil, fmt.Errorf("jwt-issuer genkey: %w: %s", err, out)
	}
	loadgenSecret, sidecarSecret := rand.Text(), rand.Text()
	s.probeSecret = rand.Text()
	secretFile := func(name, secret string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(secret+"\n"), 0o600)
	}
	loadgenSecretFile, err := secretFile("loadgen.secret", loadgenSecret)
	if err != nil {
		return nil, err
	}
	sidecarSecretFile, err := secretFile("sidecar.secret", sidecarSecret)
	if err != nil {
		return nil, err
	}
	cacheDir := filepath.Join(dir, "jwks-cache")
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, err
	}

	addrs := map[string]string{}
	for _, name := range []string{"issuer", "upstream", "jwt", "jwt-admin", "introspection", "introspection-admin", "loadgen-admin"} {
		if addrs[name], err = proc.PickAddr(); err != nil {
			return nil, err
		}
	}
	issuerURL := "http://" + addrs["issuer"]
	// The sidecars reach the token service through the relay; the load
	// generator gets its token straight from it, and the tokens name the
	// issuer by its own URL.
	tokenService := issuerURL
	if o.RTT > 0 {
		if s.relay, err = relay.Listen("127.0.0.1:0", addrs["issuer"], o.RTT); err != nil {
			return s, fmt.Errorf("relay: %w", err)
		}
		tokenService = "http://" + s.relay.Addr()
	}
	tokenCache, introspectionTTL := "0", "0s"
	if o.Caches {
		tokenCache, introspectionTTL = "10000", "60s"
	}

	type spec struct {
		job, bin, ready string
		env             []string
	}
	specs := []spec{
		{jobIssuer, "jwt-issuer", issuerURL + "/healthz", []string{
			"LISTEN_ADDR=" + addrs["issuer"], "ISSUER_URL=" + issuerURL, "SIGNING_KEY_FILE=" + key,
			"AUDIENCE=" + audience, "CLIENTS=loadgen:" + loadgenSecret + ",jwt-sidecar:" + sidecarSecret + "," + probeClientID + ":" + s.probeSecret,
		}},
		{jobUpstream, "echo-upstream", "http://" + addrs["upstream"] + "/healthz", []string{
			"LISTEN_ADDR=" + addrs["upstream"],
		}},
	}
	common := []string{"UPSTREAM_URL=http://" + addrs["upstream"], "ISSUERS=" + issuerURL, "AUDIENCES=" + audience}
	var targets []string
	for _, m := range o.Modes {
		env := append(slices.Clone(common), "LISTEN_ADDR="+addrs[m], "ADMIN_ADDR="+addrs[m+"-admin"], "AUTH_MODE="+m)
		switch m {
		case ModeJWT:
			env = append(env, "JWKS_URLS="+tokenService+"/.well-known/jwks.json", "JWKS_CACHE_DIR="+cacheDir,
				"TOKEN_CACHE_SIZE="+tokenCache)
			if o.RevocationInterval > 0 {
				env = append(env, "REVOCATION_LIST_URL="+tokenService+"/revocations",
					"REVOCATION_REFRESH_INTERVAL="+o.RevocationInterval.String(),
					"REVOCATION_STALE_AFTER="+max(o.RevocationInterval, time.Minute).String())
			}
		case ModeIntrospection:
			env = append(env, "INTROSPECTION_URL="+tokenService+"/introspect", "INTROSPECTION_CLIENT_ID=jwt-sidecar",
				"INTROSPECTION_CLIENT_SECRET_FILE="+sidecarSecretFile, "INTROSPECTION_CACHE_TTL="+introspectionTTL)
		}
		s.urls[sidecarJob(m)] = "http://" + addrs[m+"-admin"]
		s.target[m] = "http://" + addrs[m] + "/compare"
		targets = append(targets, s.target[m])
		specs = append(specs, spec{sidecarJob(m), "jwt-sidecar", s.urls[sidecarJob(m)] + "/readyz", env})
	}
	s.urls[jobIssuer] = issuerURL
	s.urls[jobLoadgen] = "http://" + addrs["loadgen-admin"]
	specs = append(specs, spec{jobLoadgen, "jwt-loadgen", s.urls[jobLoadgen] + "/readyz", []string{
		"TOKEN_URL=" + issuerURL + "/token", "CLIENT_ID=loadgen", "CLIENT_SECRET_FILE=" + loadgenSecretFile,
		"TARGETS=" + strings.Join(targets, ","), "RATE=" + strconv.FormatFloat(o.Rate, 'g', -1, 64),
		"CONCURRENCY=" + strconv.Itoa(o.Concurrency), "ADMIN_ADDR=" + addrs["loadgen-admin"], "REPORT_INTERVAL=5s",
	}})

	s.progress("Starting on 127.0.0.1 (logs in %s):", o.Dir)
	for _, sp := range specs {
		p := &process{job: sp.job, bin: proc.BinPath(bin, sp.bin), env: sp.env, logPath: filepath.Join(dir, sp.job+".log")}
		_ = os.Remove(p.logPath) // a fresh log per run; the issuer's restart appends
		if err := p.start(); err != nil {
			return s, err
		}
		s.procs = append(s.procs, p)
		s.byJob[sp.job] = p
		if err := p.WaitReady(ctx, sp.ready, o.ReadyTimeout); err != nil {
			return s, err
		}
		s.progress("  %-22s pid %-7d ready", sp.job, p.PID())
	}
	return s, nil
}

// stopAll stops the processes in reverse order of start: the load first.
func (s *stack) stopAll() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop(10 * time.Second)
	}
	if s.relay != nil {
		s.relay.Close()
	}
}

// Snapshot indexes: the phase boundaries.
const (
	snapWarm      = iota // end of warm-up, start of steady
	snapSteady           // end of steady; the issuer is killed right after
	snapOutage           // end of outage, before the restart
	snapRestarted        // the issuer is ready again: start of recovery
	snapRecovered        // end of recovery
	snapCount
)

// phases runs warm-up, steady, outage and recovery and returns the
// snapshots at their boundaries.
func (s *stack) phases(ctx context.Context) ([]snapshot, error) {
	snaps := make([]snapshot, 0, snapCount)
	take := func(label string) error {
		snap, err := s.snapshot(ctx, label)
		snaps = append(snaps, snap)
		return err
	}
	issuer := s.byJob[jobIssuer]

	s.progress("Warm-up: %s, not counted.", s.o.Warmup)
	sctx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	sp := s.sample(sctx, s.o.SampleEvery)
	if err := s.hold(ctx, s.o.Warmup); err != nil {
		return nil, err
	}
	if err := take("warm"); err != nil {
		return nil, err
	}
	zero := snaps[snapWarm].at
	since := func(t time.Time) float64 { return t.Sub(zero).Seconds() }
	s.progress("Steady: %s at %g requests/s to each sidecar.", s.o.Steady, s.o.Rate)
	if err := s.hold(ctx, s.o.Steady); err != nil {
		return nil, err
	}
	if err := take("steady"); err != nil {
		return nil, err
	}
	s.progress("Outage: killing the issuer (pid %d); the load goes on for %s.", issuer.PID(), s.o.Outage)
	s.marks.OutageStart = since(time.Now())
	issuer.Kill()
	if err := s.hold(ctx, s.o.Outage); err != nil {
		return nil, err
	}
	if err := take("outage"); err != nil {
		return nil, err
	}
	s.progress("Recovery: restarting the issuer with the same key.")
	s.marks.OutageEnd = since(time.Now())
	if err := issuer.start(); err != nil {
		return nil, err
	}
	if err := issuer.WaitReady(ctx, s.urls[jobIssuer]+"/healthz", s.o.ReadyTimeout); err != nil {
		return nil, err
	}
	if err := take("restarted"); err != nil {
		return nil, err
	}
	s.marks.Restarted = since(snaps[snapRestarted].at)
	s.progress("  issuer ready again (pid %d); recovery: %s.", issuer.PID(), s.o.Recovery)
	if err := s.hold(ctx, s.o.Recovery); err != nil {
		return nil, err
	}
	if err := take("recovered"); err != nil {
		return nil, err
	}
	s.marks.Recovered = since(snaps[snapRecovered].at)
	if s.o.RevocationInterval > 0 {
		s.progress("Revocation: a probe token is revoked at the issuer; each sidecar is asked every %s until it refuses it (at most %s).",
			probeEvery, s.o.revocationDeadline())
		revs, at, err := s.revoke(ctx)
		if err != nil {
			return nil, err
		}
		s.revocations = revs
		s.marks.Revoked = ptr(since(at))
		for _, m := range s.o.Modes {
			if r := revs[m]; r.RefusedAfter != nil {
				s.progress("  %-22s refused it %s after the revocation", sidecarJob(m), formatSeconds(r.RefusedAfter))
			} else {
				s.progress("  %-22s still accepted it %.1f s after the revocation", sidecarJob(m), r.WaitedSeconds)
			}
		}
	}
	s.marks.End = since(time.Now())
	s.timeline = sp.stop(stopSampler, zero)
	return snaps, nil
}

// hold waits d, failing early when ctx ends or a process the run needs
// exits.
func (s *stack) hold(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		for _, p := range s.procs {
			if p.job != jobIssuer && p.Exited() {
				return p.Died()
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
}

// snapshot scrapes every process's /metrics (the load generator first: its
// clock times the phases) and each sidecar's /readyz. The raw pages are
// kept in the work folder, so every number can be checked by hand. An
// issuer that is down or has no /metrics is recorded as missing.
func (s *stack) snapshot(ctx context.Context, label string) (snapshot, error) {
	snap := snapshot{label: label, scrapes: map[string]*scrape{}, missing: map[string]string{}, ready: map[string]int{}}
	jobs := []string{jobLoadgen}
	for _, m := range s.o.Modes {
		jobs = append(jobs, sidecarJob(m))
	}
	jobs = append(jobs, jobIssuer)
	for i, job := range jobs {
		if i == 0 {
			snap.at = time.Now()
		}
		raw, err := fetchMetrics(ctx, s.urls[job]+"/metrics")
		if err == nil {
			path := filepath.Join(s.dir, "scrapes", fmt.Sprintf("%d-%s-%s.txt", s.snaps, label, job))
			if werr := os.WriteFile(path, raw, 0o644); werr != nil {
				return snap, werr
			}
			snap.scrapes[job], err = parseScrape(strings.NewReader(string(raw)))
		}
		if err != nil {
			if job != jobIssuer {
				return snap, fmt.Errorf("%s /metrics: %w", job, err)
			}
			snap.missing[job] = err.Error()
		}
	}
	for _, m := range s.o.Modes {
		status, err := proc.Status(ctx, s.urls[sidecarJob(m)]+"/readyz")
		if err != nil {
			return snap, fmt.Errorf("%s /readyz: %w", sidecarJob(m), err)
		}
		snap.ready[sidecarJob(m)] = status
	}
	s.snaps++
	return snap, nil
}

// fetchMetrics GETs a /metrics page.
func fetchMetrics(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}
