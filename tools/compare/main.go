// Command compare is `make compare`: stateless JWT verification and token
// introspection side by side, without Docker. On 127.0.0.1 it starts
// jwt-issuer (its key on disk, so a restart keeps it), echo-upstream, a
// jwt-sidecar in jwt mode, one in introspection mode, and jwt-loadgen
// sending the same open-loop rate through both. After a warm-up it measures
// a steady phase, kills the issuer and keeps the load on (the outage),
// restarts it (the recovery), revokes a probe token and times each
// sidecar's first refusal, and prints a table read from the processes' own
// /metrics. With -rtt it does all of that once per token-service round trip
// (a delaying relay between the sidecars and the issuer), then prints the
// runs side by side and, with -svg, draws them.
//
//	go build -o bin/ ./cmd/...
//	go run ./tools/compare -bin bin [-quick] [-rtt 0,0.5ms,2ms,50ms] [-json .bench/compare.json] [-svg docs/compare.svg]
//
// Progress goes to stderr, the table to stdout. It exits 1 when the run
// failed or a result is not what the two modes should give (the table says
// which), 2 for bad flags.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/compare/comparison"
	"github.com/jwt-sidecar/jwt-sidecar/tools/report"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the flags.
type config struct {
	opts     comparison.Options
	rtts     []time.Duration
	jsonPath string
	svgPath  string
	replot   string // a -json file to print and draw again, without running
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	o := &c.opts
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Bin, "bin", "bin", "folder with jwt-issuer, echo-upstream, jwt-sidecar and jwt-loadgen")
	fs.StringVar(&o.Dir, "dir", ".compare", "work folder: key, secrets, JWKS cache, logs and every raw /metrics scrape")
	modes := fs.String("modes", "jwt,introspection", "comma-separated modes to run side by side")
	fs.Float64Var(&o.Rate, "rate", 200, "requests per second to each sidecar (open loop)")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "most requests in flight to each sidecar; beyond, due requests are dropped and counted")
	fs.BoolVar(&o.Caches, "caches", false, "turn on each mode's cache (jwt verified-token cache, introspection cache 60s); off, every request is verified in full")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "load before measuring, not counted")
	fs.DurationVar(&o.Steady, "steady", 20*time.Second, "the steady phase")
	fs.DurationVar(&o.Outage, "outage", 10*time.Second, "how long the issuer stays down with the load on")
	fs.DurationVar(&o.Recovery, "recovery", 5*time.Second, "the phase after the issuer is back")
	fs.DurationVar(&o.ReadyTimeout, "timeout", 30*time.Second, "how long each process may take to become ready")
	short := fs.Bool("quick", false, fmt.Sprintf("short phases (warm-up %s, steady %s, outage %s, recovery %s) unless given explicitly",
		comparison.Quick.Warmup, comparison.Quick.Steady, comparison.Quick.Outage, comparison.Quick.Recovery))
	rtts := fs.String("rtt", "0,0.5ms,2ms,50ms", "comma-separated token-service round trips, one run each (0 is loopback; e.g. 0,0.5ms,2ms,50ms)")
	fs.DurationVar(&o.RevocationInterval, "revocation-interval", 10*time.Second, "the jwt sidecar's REVOCATION_REFRESH_INTERVAL; after the recovery a probe token is revoked and each sidecar's first refusal timed (0: no revocation list, no revocation phase)")
	fs.DurationVar(&o.SampleEvery, "sample", time.Second, "scrape the load generator and the sidecars this often for the picture's timeline (0: none)")
	fs.StringVar(&c.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.svgPath, "svg", "", "also draw the runs' timelines as SVG to this file")
	fs.StringVar(&c.replot, "replot", "", "run nothing: print the tables of this -json file again and, with -svg, draw it")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./tools/compare [flags]\n\nStateless JWT verification vs token introspection on 127.0.0.1, with an issuer outage.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		q := comparison.Quick
		for name, d := range map[string]struct{ to, quick *time.Duration }{
			"warmup": {&o.Warmup, &q.Warmup}, "steady": {&o.Steady, &q.Steady}, "outage": {&o.Outage, &q.Outage}, "recovery": {&o.Recovery, &q.Recovery},
		} {
			if !set[name] {
				*d.to = *d.quick
			}
		}
	}
	if *short && !setFlag(fs, "revocation-interval") {
		o.RevocationInterval = quickRevocation
	}
	for r := range strings.SplitSeq(*rtts, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if r == "0" {
			c.rtts = append(c.rtts, 0)
			continue
		}
		d, err := time.ParseDuration(r)
		if err != nil {
			return c, fmt.Errorf("rtt: %q: %w", r, err)
		}
		c.rtts = append(c.rtts, d)
	}
	if len(c.rtts) == 0 {
		return c, errors.New("rtt: none given")
	}
	for m := range strings.SplitSeq(*modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			o.Modes = append(o.Modes, m)
		}
	}
	var errs []error
	for _, d := range c.rtts {
		o.RTT = d
		if err := o.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	o.RTT = 0
	return c, errors.Join(errs...)
}

// quickRevocation is the revocation list's poll interval under -quick.
const quickRevocation = 2 * time.Second

// setFlag reports whether name was given on the command line.
func setFlag(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if c.replot != "" {
		return replot(c, stdout, stderr)
	}
	c.opts.Progress = stderr
	rp := &comparison.Report{Command: report.Command("go run ./tools/compare", args)}
	baseDir := c.opts.Dir
	for i, rtt := range c.rtts {
		o := c.opts
		o.RTT = rtt
		if len(c.rtts) > 1 {
			// Each run's logs and scrapes in a folder of its own.
			o.Dir = filepath.Join(baseDir, fmt.Sprintf("rtt-%d-%s", i, strings.ReplaceAll(rtt.String(), "µ", "u")))
			fmt.Fprintf(stderr, "\n== Run %d of %d: token-service round trip %s ==\n", i+1, len(c.rtts), rtt)
		}
		res, err := comparison.Run(ctx, o)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("interrupted: %w", err)
			}
			fmt.Fprintf(stderr, "compare: round trip %s: %v\n", rtt, err)
			return exitFail
		}
		res.Command = rp.Command
		rp.Machine = res.Machine
		rp.Runs = append(rp.Runs, res)
		fmt.Fprintln(stdout)
		res.WriteTable(stdout)
	}
	if len(rp.Runs) > 1 {
		fmt.Fprintln(stdout)
		rp.WriteSummary(stdout)
	}
	if c.jsonPath != "" {
		if err := report.WriteJSON(c.jsonPath, rp); err != nil {
			fmt.Fprintf(stderr, "-json: %v\n", err)
			return exitFail
		}
	}
	if c.svgPath != "" {
		if err := writeSVG(c.svgPath, rp); err != nil {
			fmt.Fprintf(stderr, "-svg: %v\n", err)
			return exitFail
		}
	}
	if f := rp.Failures(); len(f) > 0 {
		fmt.Fprintf(stderr, "compare: %d result(s) not as expected (see UNEXPECTED above); the numbers are not a valid comparison\n", len(f))
		return exitFail
	}
	return exitOK
}

// replot prints the tables of a saved report and draws it.
func replot(c config, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(c.replot)
	if err != nil {
		fmt.Fprintf(stderr, "-replot: %v\n", err)
		return exitFail
	}
	var rp comparison.Report
	if err := json.Unmarshal(b, &rp); err != nil || len(rp.Runs) == 0 {
		fmt.Fprintf(stderr, "-replot: %s is not a report of tools/compare -json (%v)\n", c.replot, err)
		return exitFail
	}
	for _, r := range rp.Runs {
		fmt.Fprintln(stdout)
		r.WriteTable(stdout)
	}
	fmt.Fprintln(stdout)
	rp.WriteSummary(stdout)
	if c.svgPath != "" {
		if err := writeSVG(c.svgPath, &rp); err != nil {
			fmt.Fprintf(stderr, "-svg: %v\n", err)
			return exitFail
		}
	}
	return exitOK
}

// writeSVG draws rp to path, making its folder first.
func writeSVG(path string, rp *comparison.Report) error {
	var b bytes.Buffer
	if err := rp.WriteSVG(&b); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
