//go:build linux

// Command load is the load run behind `make bench`. On 127.0.0.1 it measures,
// interleaved, four subjects in front of one upstream: the upstream itself
// (direct), nginx as a plain reverse proxy, a plain pooled
// httputil.ReverseProxy, and the real jwt-sidecar binary verifying RS256.
// In the same rounds it measures unary gRPC calls to a grpc-go server, direct
// (grpc-direct), through the plain reverse proxy over h2c (grpc-reverseproxy)
// and through jwt-sidecar with an h2c:// upstream (grpc-jwt-sidecar), with
// its own gRPC load generator.
// It reports medians over rounds of throughput, latency, CPU per request and
// peak RSS, the ratios of jwt-sidecar to the plain reverse proxy, and those of
// the gRPC row to direct.
//
//	go run ./tools/load -bin bin
//
// The upstreams, the plain reverse proxy and the gRPC load generator are this
// program itself, re-executed
// with a hidden subcommand, so every subject is its own process and /proc
// attributes CPU and memory to it alone. Linux only: it reads /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/report"
)

// Subject names, as printed in the table and accepted by -subjects.
const (
	subjectDirect       = "direct"
	subjectNginx        = "nginx"
	subjectReverseProxy = "reverseproxy"
	subjectSidecar      = "jwt-sidecar"
	// The peers (make peers): jwt-sidecar with its token cache off, so that
	// every request is a full signature check as in oauth2-proxy, and
	// oauth2-proxy in bearer-JWT mode.
	subjectSidecarNoCache = "jwt-sidecar-nocache"
	subjectOAuth2Proxy    = "oauth2-proxy"
)

// allSubjects are the default run (make bench-load); knownSubjects adds the
// peers, which need an OIDC issuer and a binary built elsewhere.
var (
	allSubjects   = []string{subjectDirect, subjectNginx, subjectReverseProxy, subjectSidecar, subjectGRPCDirect, subjectGRPCReverseProxy, subjectGRPCSidecar}
	knownSubjects = []string{subjectDirect, subjectNginx, subjectReverseProxy, subjectSidecar, subjectGRPCDirect, subjectGRPCReverseProxy, subjectGRPCSidecar, subjectSidecarNoCache, subjectOAuth2Proxy}
)

// verifies reports whether a subject authenticates requests, so that its
// preflight must see a request without a valid token refused.
func verifies(subject string) bool {
	return subject == subjectSidecar || subject == subjectSidecarNoCache || subject == subjectOAuth2Proxy
}

// Exit codes. exitMissingTool is for a load generator that is not installed
// outside CI, so `make bench` on a laptop says what to install; exitUsage is
// for bad flags, as the flag package does.
const (
	exitOK          = 0
	exitFail        = 1
	exitMissingTool = 2
	exitUsage       = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// dispatch runs a hidden subcommand when the arguments name one, and the load
// run otherwise. Tests call it from TestMain so that re-executing the test
// binary works like re-executing the command.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case cmdUpstream:
			return serveUpstream(ctx, args[1:], stderr)
		case cmdReverseProxy:
			return serveReverseProxy(ctx, args[1:], stderr)
		case cmdGRPCUpstream:
			return serveGRPCUpstream(ctx, args[1:], stderr)
		case cmdGRPCLoad:
			return grpcLoad(ctx, args[1:], stdout, stderr)
		}
	}
	return run(ctx, args, stdout, stderr)
}

// config is the load run's flags.
type config struct {
	binDir      string
	subjects    []string
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	grpcConns   int // HTTP/2 connections of the gRPC load
	strict      bool
	jsonPath    string
	nginxPath   string
	oauth2Proxy string   // the oauth2-proxy binary (subject oauth2-proxy)
	issuer      string   // the jwt-issuer binary: with oauth2-proxy, the OIDC issuer of the run
	sidecarEnv  envList  // extra environment for tuning experiments
	args        []string // as given, for the report
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (l *envList) String() string { return strings.Join(*l, " ") }

func (l *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*l = append(*l, v)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{args: args}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	subjects := fs.String("subjects", strings.Join(allSubjects, ","), "comma-separated subjects to measure")
	fs.StringVar(&cfg.binDir, "bin", "bin", "directory holding the jwt-sidecar binary")
	fs.IntVar(&cfg.rounds, "rounds", 10, "rounds; each measures every subject once, rotated and reversed every other round")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured run per subject per round (whole seconds)")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up before each run (whole seconds; 0 for none)")
	fs.IntVar(&cfg.connections, "c", 256, "concurrent connections of the load generator")
	fs.IntVar(&cfg.threads, "t", 2, "load generator threads (wrk)")
	fs.IntVar(&cfg.grpcConns, "grpc-conns", 4, "HTTP/2 connections the -c concurrent gRPC calls share")
	fs.BoolVar(&cfg.strict, "strict", false, "exit 1 when any target FAILs")
	fs.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&cfg.nginxPath, "nginx", "", "nginx binary (default: nginx in PATH, then /usr/sbin/nginx)")
	fs.StringVar(&cfg.oauth2Proxy, "oauth2-proxy", "", "oauth2-proxy binary for the oauth2-proxy subject (default: oauth2-proxy in -bin)")
	fs.StringVar(&cfg.issuer, "issuer", "", "jwt-issuer binary, the OIDC issuer every subject trusts when oauth2-proxy is measured (default: jwt-issuer in -bin)")
	fs.Var(&cfg.sidecarEnv, "sidecar-env", "extra KEY=VALUE for jwt-sidecar, repeatable, for tuning experiments (e.g. GOMEMLIMIT=24MiB); the default run uses none")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./tools/load [flags]\n\nMeasures direct, nginx, reverseproxy and jwt-sidecar on 127.0.0.1 with wrk,\nand unary gRPC calls direct and through reverseproxy and jwt-sidecar over h2c\n(grpc-direct, grpc-reverseproxy, grpc-jwt-sidecar) with a built-in gRPC load (and, when named in -subjects, jwt-sidecar-nocache and oauth2-proxy: make peers).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var problems []error
	for s := range strings.SplitSeq(*subjects, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case !slices.Contains(knownSubjects, s):
			problems = append(problems, fmt.Errorf("-subjects: unknown subject %q (known: %s)", s, strings.Join(knownSubjects, ", ")))
		case slices.Contains(cfg.subjects, s):
			problems = append(problems, fmt.Errorf("-subjects: %q given twice", s))
		default:
			cfg.subjects = append(cfg.subjects, s)
		}
	}
	if len(cfg.subjects) == 0 {
		problems = append(problems, errors.New("-subjects: none given"))
	}
	if cfg.rounds < 1 {
		problems = append(problems, errors.New("-rounds: must be at least 1"))
	}
	if cfg.duration < time.Second || cfg.duration%time.Second != 0 {
		problems = append(problems, errors.New("-duration: must be a whole number of seconds, at least 1s (wrk counts in seconds)"))
	}
	if cfg.warmup < 0 || cfg.warmup%time.Second != 0 {
		problems = append(problems, errors.New("-warmup: must be a whole number of seconds, 0 or more"))
	}
	if cfg.connections < 1 {
		problems = append(problems, errors.New("-c: must be at least 1"))
	}
	if cfg.threads < 1 {
		problems = append(problems, errors.New("-t: must be at least 1"))
	}
	if cfg.grpcConns < 1 {
		problems = append(problems, errors.New("-grpc-conns: must be at least 1"))
	}
	if cfg.oauth2Proxy == "" {
		cfg.oauth2Proxy = filepath.Join(cfg.binDir, "oauth2-proxy")
	}
	if cfg.issuer == "" {
		cfg.issuer = filepath.Join(cfg.binDir, "jwt-issuer")
	}
	// wrk refuses fewer connections than threads.
	cfg.threads = min(cfg.threads, cfg.connections)
	return cfg, errors.Join(problems...)
}

// budget bounds the whole run: every load is timed, and this adds room for
// starting and stopping processes.
func (c config) budget() time.Duration {
	perRun := c.duration + c.warmup + 15*time.Second
	return time.Duration(c.rounds*len(c.subjects))*perRun + time.Minute
}

// inCI reports whether a missing tool must fail the run rather than skip.
func inCI() bool { return os.Getenv("CI") == "true" }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}

	gen, err := findLoadGenerator()
	if err != nil {
		fmt.Fprintln(stderr, err)
		if inCI() {
			fmt.Fprintln(stderr, "CI=true: a missing load generator is a failure")
			return exitFail
		}
		return exitMissingTool
	}

	if slices.Contains(cfg.subjects, subjectNginx) {
		path, err := findNginx(cfg.nginxPath)
		if err != nil {
			if inCI() {
				fmt.Fprintf(stderr, "CI=true: nginx is required: %v\n", err)
				return exitFail
			}
			fmt.Fprintf(stdout, "NOTE: the nginx row is skipped: %v (apt-get install nginx-light)\n\n", err)
			cfg.subjects = slices.DeleteFunc(cfg.subjects, func(s string) bool { return s == subjectNginx })
		}
		cfg.nginxPath = path
	}
	if len(cfg.subjects) == 0 {
		fmt.Fprintln(stderr, "nothing left to measure")
		return exitFail
	}
	if slices.Contains(cfg.subjects, subjectSidecar) || slices.Contains(cfg.subjects, subjectSidecarNoCache) || slices.Contains(cfg.subjects, subjectGRPCSidecar) {
		if err := checkSidecarBinary(sidecarPath(cfg)); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
	}
	if slices.Contains(cfg.subjects, subjectOAuth2Proxy) {
		for _, b := range []struct{ path, build string }{
			{cfg.oauth2Proxy, "make peers builds it from tools/peers"},
			{cfg.issuer, "make build"},
		} {
			if err := checkBinary(b.path, b.build); err != nil {
				fmt.Fprintln(stderr, err)
				return exitFail
			}
		}
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.budget())
	defer cancel()
	res, err := measure(ctx, cfg, gen, stderr)
	if err != nil {
		switch ctx.Err() {
		case context.Canceled:
			err = fmt.Errorf("interrupted: %w", err)
		case context.DeadlineExceeded:
			err = fmt.Errorf("over the time budget of %s: %w", cfg.budget(), err)
		}
		fmt.Fprintf(stderr, "load run failed: %v\n", err)
		return exitFail
	}

	writeReport(stdout, res)
	if cfg.jsonPath != "" {
		if err := report.WriteJSON(cfg.jsonPath, res); err != nil {
			fmt.Fprintf(stderr, "-json: %v\n", err)
			return exitFail
		}
	}
	code := exitOK
	if n := res.errorCount(); n > 0 {
		// A subject that answers errors is not measured at all: its numbers
		// are the cost of failing, not of proxying.
		fmt.Fprintf(stderr, "ERROR: %d failed requests (see the errors column); the numbers above are not valid\n", n)
		code = exitFail
	}
	if cfg.strict && res.anyFail() {
		fmt.Fprintln(stderr, "-strict: a target FAILed")
		code = exitFail
	}
	return code
}
