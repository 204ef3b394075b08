//go:build linux

package main

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/report"
)

// runResult is one measured run of one subject.
type runResult struct {
	Round            int     `json:"round"`
	Requests         int64   `json:"requests"`
	RPS              float64 `json:"rps"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	CPUMicrosPerReq  float64 `json:"cpu_us_per_request"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"` // VmHWM after the run: the peak since start
	Non2xx           int64   `json:"non_2xx"`
	SocketErrors     int64   `json:"socket_errors"`
	WarmupErrors     int64   `json:"warmup_errors"`
	WarmupRequests   int64   `json:"warmup_requests"`
	UpstreamConns    int64   `json:"upstream_new_conns"` // accepted by the upstream during the measured run
	UpstreamRequests int64   `json:"upstream_requests"`  // answered by the upstream during the measured run
	// OtherCPUPercent is the share of the machine's CPU that processes
	// other than the subject, the upstream and the load generator used
	// during the measured run: a busy machine makes the numbers noisy.
	OtherCPUPercent float64 `json:"other_cpu_percent"`
}

func (r runResult) errors() int64 { return r.Non2xx + r.SocketErrors + r.WarmupErrors }

// subjectResult is a subject's runs and their summary.
type subjectResult struct {
	Name            string      `json:"name"`
	RPS             float64     `json:"rps"` // median over rounds, as are the next three
	P50Ms           float64     `json:"p50_ms"`
	P99Ms           float64     `json:"p99_ms"`
	CPUMicrosPerReq float64     `json:"cpu_us_per_request"`
	PeakRSSMiB      float64     `json:"peak_rss_mib"` // the largest over rounds
	Errors          int64       `json:"errors"`       // summed over rounds, warm-ups included
	Runs            []runResult `json:"runs"`
}

func (s *subjectResult) summarize() {
	med := func(f func(runResult) float64) float64 {
		v := make([]float64, len(s.Runs))
		for i, r := range s.Runs {
			v[i] = f(r)
		}
		return median(v)
	}
	s.RPS = med(func(r runResult) float64 { return r.RPS })
	s.P50Ms = med(func(r runResult) float64 { return r.P50Ms })
	s.P99Ms = med(func(r runResult) float64 { return r.P99Ms })
	s.CPUMicrosPerReq = med(func(r runResult) float64 { return r.CPUMicrosPerReq })
	s.PeakRSSMiB, s.Errors = 0, 0
	for _, r := range s.Runs {
		s.PeakRSSMiB = max(s.PeakRSSMiB, float64(r.PeakRSSBytes)/(1<<20))
		s.Errors += r.errors()
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// machine describes where the numbers were taken.
type machine struct {
	NProc         int    `json:"nproc"`
	CPU           string `json:"cpu"`
	Kernel        string `json:"kernel"`
	GoVersion     string `json:"go_version"`
	SidecarGo     string `json:"jwt_sidecar_go_version,omitempty"`
	Nginx         string `json:"nginx_version,omitempty"`
	OAuth2Proxy   string `json:"oauth2_proxy_version,omitempty"`
	LoadGenerator string `json:"load_generator"`
}

// results is everything the report prints.
type results struct {
	Machine     machine         `json:"machine"`
	Command     string          `json:"command"`
	LoadCommand string          `json:"load_command"`
	Rounds      int             `json:"rounds"`
	Duration    string          `json:"duration"`
	Warmup      string          `json:"warmup"`
	Connections int             `json:"connections"`
	Threads     int             `json:"threads"`
	Subjects    []subjectResult `json:"subjects"`
	Checks      []check         `json:"checks"`
	// GRPC is the gRPC row against direct, when both gRPC subjects ran.
	GRPC            *grpcSummary `json:"grpc,omitempty"`
	GRPCLoadCommand string       `json:"grpc_load_command,omitempty"`
	Notes           []string     `json:"notes,omitempty"`
	// SidecarMetrics are jwt-sidecar's own metric lines after the run.
	SidecarMetrics []string `json:"jwt_sidecar_metrics,omitempty"`
	// SidecarLogBytesPerRequest is what its default logging wrote per request.
	SidecarLogBytesPerRequest float64 `json:"jwt_sidecar_log_bytes_per_request,omitempty"`
}

func (r *results) subject(name string) *subjectResult {
	for i := range r.Subjects {
		if r.Subjects[i].Name == name {
			return &r.Subjects[i]
		}
	}
	return nil
}

func (r *results) errorCount() int64 {
	var n int64
	for _, s := range r.Subjects {
		n += s.Errors
	}
	return n
}

func (r *results) anyFail() bool {
	return slices.ContainsFunc(r.Checks, func(c check) bool { return !c.Pass })
}

// measure starts the upstream and every subject, runs the rounds and stops
// everything it started.
func measure(ctx context.Context, cfg config, gen loadGenerator, progress io.Writer) (*results, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "jwt-sidecar-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// nginx started as root runs its workers as nobody; they must reach
	// their temp paths below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	creds, err := newCredentials(dir, time.Now(), max(time.Hour, cfg.budget()+10*time.Minute))
	if err != nil {
		return nil, err
	}
	e := env{
		exe:        exe,
		dir:        dir,
		lifetime:   cfg.budget() + time.Minute,
		creds:      creds,
		nginxPath:  cfg.nginxPath,
		sidecar:    sidecarPath(cfg),
		oauth2:     cfg.oauth2Proxy,
		sidecarEnv: cfg.sidecarEnv,
	}
	if slices.Contains(cfg.subjects, subjectOAuth2Proxy) {
		// oauth2-proxy finds its keys by OIDC discovery only: the dev issuer
		// becomes every subject's issuer, and its token the load's.
		iss, c, err := startIssuer(ctx, cfg.issuer, dir, max(time.Hour, cfg.budget()+10*time.Minute))
		if err != nil {
			return nil, err
		}
		defer iss.Stop(5 * time.Second)
		e.creds = c
		creds = c
	}
	e.upstream, err = startUpstream(ctx, exe, dir, e.lifetime)
	if err != nil {
		return nil, err
	}
	defer e.upstream.proc.Stop(5 * time.Second)
	if slices.ContainsFunc(cfg.subjects, isGRPC) {
		if e.grpc, err = startGRPCUpstream(ctx, exe, dir, e.lifetime); err != nil {
			return nil, err
		}
		defer e.grpc.proc.Stop(5 * time.Second)
	}
	grpcGen := grpcGenerator{exe: exe, conns: cfg.grpcConns}

	var subjects []*subject
	defer func() {
		for _, s := range subjects {
			if s.proc != s.up.proc {
				s.proc.Stop(5 * time.Second)
			}
		}
	}()
	res := &results{
		Machine:     describeMachine(gen, cfg, e.sidecar),
		Command:     report.Command("go run ./tools/load", cfg.args),
		Rounds:      cfg.rounds,
		Duration:    cfg.duration.String(),
		Warmup:      cfg.warmup.String(),
		Connections: cfg.connections,
		Threads:     cfg.threads,
	}
	if e.creds.issuerURL != "" {
		res.Notes = append(res.Notes, "every subject that verifies trusts the dev issuer (jwt-issuer serve) by OIDC discovery, and the load sends one RS256 client_credentials token from it; oauth2-proxy runs with --skip-jwt-bearer-tokens and --request-logging=false")
	}
	if len(cfg.sidecarEnv) > 0 && slices.Contains(cfg.subjects, subjectSidecar) {
		res.Notes = append(res.Notes, fmt.Sprintf("jwt-sidecar ran with extra environment %s: these are not the defaults a user gets", cfg.sidecarEnv.String()))
	}
	for _, name := range cfg.subjects {
		s, err := startSubject(ctx, name, e)
		if err != nil {
			return nil, err
		}
		subjects = append(subjects, s)
		notes, err := s.preflight(ctx, creds)
		if err != nil {
			return nil, err
		}
		res.Notes = append(res.Notes, notes...)
		res.Subjects = append(res.Subjects, subjectResult{Name: name})
	}
	res.LoadCommand = gen.commandLine("http://127.0.0.1:PORT/", cfg.duration, cfg.connections, cfg.threads)
	if slices.ContainsFunc(cfg.subjects, isGRPC) {
		res.GRPCLoadCommand = grpcGen.commandLine(cfg.duration, cfg.connections)
	}

	for round := range cfg.rounds {
		for i := range subjects {
			// Rotate, and reverse every other round, so that no subject
			// always runs right after the same neighbour.
			j := (i + round) % len(subjects)
			if round%2 == 1 {
				j = len(subjects) - 1 - j
			}
			s := subjects[j]
			var g generator = gen
			if isGRPC(s.name) {
				g = grpcGen
			}
			run, err := measureRun(ctx, cfg, g, s.up, s, creds.token)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, s.name, err)
			}
			run.Round = round + 1
			fmt.Fprintf(progress, "round %d/%d %-12s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %6.1f µs CPU/req  %5.1f MiB  %d new upstream conns  %d errors  other CPU %.0f%%\n",
				round+1, cfg.rounds, s.name, run.RPS, run.P50Ms, run.P99Ms, run.CPUMicrosPerReq, float64(run.PeakRSSBytes)/(1<<20), run.UpstreamConns, run.errors(), run.OtherCPUPercent)
			if n := run.errors(); n > 0 {
				fmt.Fprintf(progress, "ERROR: %s round %d: %d non-2xx, %d socket errors, %d in warm-up\n", s.name, round+1, run.Non2xx, run.SocketErrors, run.WarmupErrors)
			}
			sr := res.subject(s.name)
			sr.Runs = append(sr.Runs, run)
		}
	}
	for i := range res.Subjects {
		res.Subjects[i].summarize()
	}
	for _, s := range subjects {
		if s.name == subjectSidecar {
			res.SidecarMetrics = scrapeSidecar(ctx, s.adminURL)
			res.SidecarLogBytesPerRequest = logBytesPerRequest(s.proc.LogPath, res.subject(s.name))
		}
	}
	res.Checks = checks(res, cfg.connections)
	res.GRPC = summarizeGRPC(res, cfg.grpcConns)
	return res, nil
}

// generator runs one bounded load: wrk (or hey) for HTTP, grpcGenerator for
// the gRPC subjects.
type generator interface {
	run(ctx context.Context, url, token string, d time.Duration, c, t int) (loadResult, error)
}

// measureRun warms up, then measures one run: CPU from /proc around the load,
// RSS after it, connections and requests as the upstream counted them.
func measureRun(ctx context.Context, cfg config, gen generator, up *upstream, s *subject, token string) (runResult, error) {
	var run runResult
	if cfg.warmup > 0 {
		w, err := gen.run(ctx, s.url, token, cfg.warmup, cfg.connections, cfg.threads)
		if err != nil {
			return run, fmt.Errorf("warm-up: %w", err)
		}
		run.WarmupErrors = w.Non2xx + w.SocketErrors
		run.WarmupRequests = w.Requests
	}
	if s.proc.Exited() {
		return run, s.proc.Died()
	}
	pids, err := s.pids()
	if err != nil {
		return run, err
	}
	ours := pids
	if !slices.Contains(ours, up.proc.PID()) {
		ours = append(slices.Clone(pids), up.proc.PID())
	}
	conns0, reqs0, err := up.counts(ctx)
	if err != nil {
		return run, err
	}
	busy0, total0, err := machineTicks()
	if err != nil {
		return run, err
	}
	ours0, err := cpuTicks(ours)
	if err != nil {
		return run, err
	}
	cpu0, err := cpuTicks(pids)
	if err != nil {
		return run, err
	}
	lr, err := gen.run(ctx, s.url, token, cfg.duration, cfg.connections, cfg.threads)
	if err != nil {
		return run, err
	}
	cpu1, err := cpuTicks(pids)
	if err != nil {
		return run, fmt.Errorf("%w (did it exit?)\nlast lines of %s:\n%s", err, s.proc.LogPath, s.proc.Tail(20))
	}
	ours1, err := cpuTicks(ours)
	if err != nil {
		return run, err
	}
	busy1, total1, err := machineTicks()
	if err != nil {
		return run, err
	}
	if total := total1 - total0; total > 0 {
		other := float64(busy1-busy0-(ours1-ours0)) - lr.GeneratorCPU.Seconds()*userHZ
		run.OtherCPUPercent = max(0, 100*other/float64(total))
	}
	conns1, reqs1, err := up.counts(ctx)
	if err != nil {
		return run, err
	}
	rss, err := peakRSS(pids)
	if err != nil {
		return run, err
	}
	run.Requests = lr.Requests
	run.RPS = lr.RPS
	run.P50Ms = float64(lr.P50) / float64(time.Millisecond)
	run.P99Ms = float64(lr.P99) / float64(time.Millisecond)
	if lr.Requests > 0 {
		run.CPUMicrosPerReq = float64(cpu1-cpu0) * (1e6 / userHZ) / float64(lr.Requests)
	}
	run.PeakRSSBytes = rss
	run.Non2xx = lr.Non2xx
	run.SocketErrors = lr.SocketErrors
	run.UpstreamConns = conns1 - conns0
	run.UpstreamRequests = reqs1 - reqs0
	return run, nil
}

func describeMachine(gen loadGenerator, cfg config, sidecar string) machine {
	m := machine{
		NProc:         runtime.NumCPU(),
		CPU:           report.CPUModel(),
		GoVersion:     runtime.Version(),
		LoadGenerator: gen.name,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if slices.Contains(cfg.subjects, subjectSidecar) {
		if bi, err := buildinfo.ReadFile(sidecar); err == nil {
			m.SidecarGo = bi.GoVersion
		}
	}
	if cfg.nginxPath != "" && slices.Contains(cfg.subjects, subjectNginx) {
		if out, err := exec.Command(cfg.nginxPath, "-v").CombinedOutput(); err == nil {
			m.Nginx = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
		}
	}
	if slices.Contains(cfg.subjects, subjectOAuth2Proxy) {
		if out, err := exec.Command(cfg.oauth2Proxy, "--version").CombinedOutput(); err == nil {
			m.OAuth2Proxy = strings.TrimSpace(string(out))
		}
	}
	if gen.name == "wrk" {
		// wrk -v prints its version and exits 1.
		out, _ := exec.Command(gen.path, "-v").CombinedOutput()
		if first, _, _ := strings.Cut(string(out), "\n"); first != "" {
			m.LoadGenerator = strings.TrimSpace(first)
		}
	}
	return m
}

// scrapeSidecar keeps jwt-sidecar's own request, verification and cache
// metrics after the run, to show where its time goes.
func scrapeSidecar(ctx context.Context, adminURL string) []string {
	code, body, err := get(ctx, adminURL+"/metrics", "")
	if err != nil || code != http.StatusOK {
		return []string{fmt.Sprintf("# /metrics: status %d, %v", code, err)}
	}
	var keep []string
	for line := range strings.SplitSeq(body, "\n") {
		// Samples only, no buckets, and only those that moved.
		if !strings.HasPrefix(line, "jwt_sidecar_") || strings.Contains(line, "_bucket{") || strings.HasSuffix(line, " 0") {
			continue
		}
		keep = append(keep, line)
	}
	return keep
}

// meanVerification is jwt-sidecar's mean verification time in JWT mode,
// from the histogram's _sum and _count lines.
func meanVerification(metrics []string) (time.Duration, bool) {
	var sum, count float64
	for _, line := range metrics {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case `jwt_sidecar_verification_duration_seconds_sum{mode="jwt"}`:
			sum = v
		case `jwt_sidecar_verification_duration_seconds_count{mode="jwt"}`:
			count = v
		}
	}
	if count == 0 {
		return 0, false
	}
	return time.Duration(sum / count * float64(time.Second)), true
}

func logBytesPerRequest(path string, s *subjectResult) float64 {
	fi, err := os.Stat(path)
	if err != nil || s == nil {
		return 0
	}
	var n int64
	for _, r := range s.Runs {
		n += r.Requests + r.WarmupRequests
	}
	if n == 0 {
		return 0
	}
	return float64(fi.Size()) / float64(n)
}
