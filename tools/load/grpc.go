//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/jwt-sidecar/jwt-sidecar/test/grpctest"
)

// The gRPC row: unary calls of the echo service (test/grpctest) to a
// grpc-go server, direct, through a plain Go ReverseProxy speaking h2c both
// ways (the baseline, as reverseproxy is for HTTP/1.1) and through
// jwt-sidecar with an h2c:// upstream.
// It has its own upstream and its own load generator (this program,
// re-executed: wrk speaks no gRPC), and is measured in the same rounds as
// the HTTP/1.1 subjects.
const (
	subjectGRPCDirect       = "grpc-direct"
	subjectGRPCReverseProxy = "grpc-reverseproxy"
	subjectGRPCSidecar      = "grpc-jwt-sidecar"

	cmdGRPCUpstream = "__grpcupstream"
	cmdGRPCLoad     = "__grpcload"
)

// grpcPayload is the message every load call sends and gets back: as short
// as the HTTP upstream's body.
const grpcPayload = "ok"

func isGRPC(subject string) bool {
	return subject == subjectGRPCDirect || subject == subjectGRPCReverseProxy || subject == subjectGRPCSidecar
}

// serveGRPCUpstream is the gRPC upstream: the echo service on the inherited
// listener, counting accepted connections and calls, reported on the stats
// listener as "CONNS REQUESTS" like the HTTP upstream.
func serveGRPCUpstream(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdGRPCUpstream, flag.ContinueOnError)
	fs.SetOutput(stderr)
	lifetime := fs.Duration("lifetime", 10*time.Minute, "exit after this long, whatever happens")
	if err := fs.Parse(args); err != nil {
		return exitFail
	}
	ln, statsLn, err := upstreamListeners()
	if err != nil {
		fmt.Fprintf(stderr, "grpc upstream: %v\n", err)
		return exitFail
	}
	var calls atomic.Int64
	counted := &countingListener{Listener: ln}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return h(ctx, req)
	}))
	grpctest.Register(srv)
	stats := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "%d %d\n", counted.n.Load(), calls.Load())
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(counted); err != nil {
			fmt.Fprintf(stderr, "grpc upstream: %v\n", err)
		}
	}()
	defer srv.Stop()
	return serveUntil(ctx, *lifetime, stderr, map[*http.Server]net.Listener{stats: statsLn})
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func startGRPCUpstream(ctx context.Context, exe, dir string, lifetime time.Duration) (*upstream, error) {
	return startUpstreamAs(ctx, exe, dir, lifetime, cmdGRPCUpstream, "grpc-upstream", "h2c://")
}

// grpcGenerator runs the gRPC load: this program re-executed, so that its
// CPU is its own process's, as wrk's is.
type grpcGenerator struct {
	exe   string
	conns int // HTTP/2 connections the calls share
}

func (g grpcGenerator) args(addr, token string, d time.Duration, c int) []string {
	return []string{cmdGRPCLoad, "-addr", addr, "-token", token, "-d", d.String(), "-c", strconv.Itoa(c), "-conns", strconv.Itoa(g.conns)}
}

func (g grpcGenerator) commandLine(d time.Duration, c int) string {
	return "go run ./tools/load " + cmdGRPCLoad + " -addr 127.0.0.1:PORT -token '<token>' -d " + d.String() +
		" -c " + strconv.Itoa(c) + " -conns " + strconv.Itoa(g.conns)
}

// grpcLoadResult is what the generator prints, as JSON.
type grpcLoadResult struct {
	Requests int64         `json:"requests"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	NotOK    int64         `json:"not_ok"`    // a status other than OK from the server or the sidecar
	Failures int64         `json:"transport"` // UNAVAILABLE, deadline, cancel: the call never got an answer
}

func (g grpcGenerator) run(ctx context.Context, addr, token string, d time.Duration, c, _ int) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.exe, g.args(addr, token, d, c)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("%s: %w: %s", cmdGRPCLoad, err, stderr.String())
	}
	var r grpcLoadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return loadResult{}, fmt.Errorf("%s output %q: %w", cmdGRPCLoad, out, err)
	}
	lr := loadResult{
		Requests: r.Requests, Elapsed: r.Elapsed, P50: r.P50, P99: r.P99,
		Non2xx: r.NotOK, SocketErrors: r.Failures,
		GeneratorCPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
	}
	if r.Elapsed > 0 {
		lr.RPS = float64(r.Requests) / r.Elapsed.Seconds()
	}
	return lr, nil
}

// grpcLoad is the generator: c goroutines, each calling Unary back to back
// over conns shared connections for d, the token in every call's metadata.
// Calls in flight at d finish and count; the run's time ends with them.
func grpcLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdGRPCLoad, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "host:port of the gRPC server or jwt-sidecar")
	token := fs.String("token", "", "bearer token sent in every call's metadata")
	d := fs.Duration("d", 5*time.Second, "how long to start calls")
	c := fs.Int("c", 256, "concurrent calls")
	conns := fs.Int("conns", 4, "HTTP/2 connections")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *addr == "" || *c < 1 || *conns < 1 {
		fmt.Fprintln(stderr, "grpc load: -addr, -c >= 1 and -conns >= 1 are required")
		return exitUsage
	}
	clients := make([]*grpc.ClientConn, *conns)
	for i := range clients {
		cc, err := grpc.NewClient("passthrough:///"+*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintf(stderr, "grpc load: %v\n", err)
			return exitFail
		}
		defer cc.Close()
		clients[i] = cc
	}
	// A hang guard only: calls normally end long before.
	ctx, cancel := context.WithTimeout(ctx, *d+20*time.Second)
	defer cancel()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}
	var (
		stop               atomic.Bool
		notOK, failures    atomic.Int64
		wg                 sync.WaitGroup
		latencies          = make([][]time.Duration, *c)
		start              = time.Now()
		deadline           = start.Add(*d)
		timer              = time.AfterFunc(*d, func() { stop.Store(true) })
		unavailableOrStuck = []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Canceled}
	)
	defer timer.Stop()
	for i := range *c {
		cc := clients[i%len(clients)]
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			for !stop.Load() && time.Now().Before(deadline) {
				t0 := time.Now()
				out, err := grpctest.Unary(ctx, cc, grpcPayload)
				lat = append(lat, time.Since(t0))
				switch {
				case err == nil && out == grpcPayload:
				case err == nil:
					notOK.Add(1)
				case slices.Contains(unavailableOrStuck, status.Code(err)):
					failures.Add(1)
				default:
					notOK.Add(1)
				}
			}
			latencies[i] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(latencies...)
	slices.Sort(all)
	r := grpcLoadResult{Requests: int64(len(all)), Elapsed: elapsed, NotOK: notOK.Load(), Failures: failures.Load()}
	if n := len(all); n > 0 {
		r.P50, r.P99 = all[n*50/100], all[min(n-1, n*99/100)]
	}
	if err := json.NewEncoder(stdout).Encode(r); err != nil {
		fmt.Fprintf(stderr, "grpc load: %v\n", err)
		return exitFail
	}
	return exitOK
}

// grpcPreflight proves a gRPC subject answers the load call before it is
// measured; jwt-sidecar must refuse a call without a token and one with a
// tampered signature as UNAUTHENTICATED, and pass the subject claim as
// metadata without the token.
func (s *subject) grpcPreflight(ctx context.Context, creds credentials) (notes []string, err error) {
	cc, err := grpc.NewClient("passthrough:///"+s.url, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	call := func(token, value string) (string, error) {
		c := ctx
		if token != "" {
			c = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return grpctest.Unary(c, cc, value)
	}
	if out, err := call(creds.token, grpcPayload); err != nil || out != grpcPayload {
		return nil, fmt.Errorf("%s preflight: the load call: %q, %v, want %q\nlast lines of %s:\n%s", s.name, out, err, grpcPayload, s.proc.LogPath, s.proc.Tail(20))
	}
	if s.name != subjectGRPCSidecar {
		return nil, nil
	}
	for _, bad := range []struct{ what, token string }{
		{"without a token", ""},
		{"with a tampered signature", tamper(creds.token)},
	} {
		if _, err := call(bad.token, grpcPayload); status.Code(err) != codes.Unauthenticated {
			return nil, fmt.Errorf("%s preflight: a call %s: %v, want UNAUTHENTICATED: it does not authenticate", s.name, bad.what, err)
		}
	}
	out, err := call(creds.token, grpctest.WhoAmI)
	if want := fmt.Sprintf("sub=%s auth=false", creds.subject); err != nil || out != want {
		notes = append(notes, fmt.Sprintf("%s preflight: the gRPC server saw %q (%v), want %q: claim metadata or token stripping is off", s.name, out, err, want))
	}
	return notes, nil
}

// grpcSummary is the gRPC rows, paired per round like the HTTP/1.1
// ratios: each proxy against direct, and jwt-sidecar against the plain
// reverse proxy.
type grpcSummary struct {
	Connections int       `json:"client_connections"` // HTTP/2 connections the calls share
	Rows        []grpcRow `json:"rows"`
	// jwt-sidecar / grpc-reverseproxy, when both ran.
	SidecarThroughputRatio float64 `json:"sidecar_vs_reverseproxy_throughput_ratio,omitempty"`
	SidecarCPURatio        float64 `json:"sidecar_vs_reverseproxy_cpu_ratio,omitempty"`
}

// grpcRow is one proxy against grpc-direct.
type grpcRow struct {
	Name            string  `json:"name"`
	ThroughputRatio float64 `json:"throughput_vs_direct"` // calls/s through the proxy / direct
	CPUPerCall      float64 `json:"cpu_us_per_call"`      // the proxy's own CPU per call (median)
	CPURatio        float64 `json:"cpu_vs_server"`        // the proxy's CPU per call / the gRPC server's, direct
	AddedP50Ms      float64 `json:"added_p50_ms"`
	AddedP99Ms      float64 `json:"added_p99_ms"`
}

func summarizeGRPC(r *results, conns int) *grpcSummary {
	direct := r.subject(subjectGRPCDirect)
	if direct == nil || direct.RPS == 0 {
		return nil
	}
	g := &grpcSummary{Connections: conns}
	for _, name := range []string{subjectGRPCReverseProxy, subjectGRPCSidecar} {
		s := r.subject(name)
		if s == nil {
			continue
		}
		g.Rows = append(g.Rows, grpcRow{
			Name:            name,
			ThroughputRatio: pairedRatio(s, direct, func(r runResult) float64 { return r.RPS }),
			CPUPerCall:      s.CPUMicrosPerReq,
			CPURatio:        pairedRatio(s, direct, func(r runResult) float64 { return r.CPUMicrosPerReq }),
			AddedP50Ms:      pairedDiff(s, direct, func(r runResult) float64 { return r.P50Ms }),
			AddedP99Ms:      pairedDiff(s, direct, func(r runResult) float64 { return r.P99Ms }),
		})
	}
	side, rp := r.subject(subjectGRPCSidecar), r.subject(subjectGRPCReverseProxy)
	if side != nil && rp != nil && rp.RPS > 0 {
		g.SidecarThroughputRatio = pairedRatio(side, rp, func(r runResult) float64 { return r.RPS })
		g.SidecarCPURatio = pairedRatio(side, rp, func(r runResult) float64 { return r.CPUMicrosPerReq })
	}
	if len(g.Rows) == 0 {
		return nil
	}
	return g
}

func writeGRPC(w io.Writer, r *results) {
	g := r.GRPC
	if g == nil {
		return
	}
	direct := r.subject(subjectGRPCDirect)
	fmt.Fprintf(w, "\n### gRPC over h2c against direct\n\n")
	fmt.Fprintf(w, "Unary calls of a small echo service to a grpc-go server: direct, through a plain Go ReverseProxy speaking h2c both ways, and through jwt-sidecar (UPSTREAM_URL=h2c://...); %d concurrent calls over %d HTTP/2 connections. Paired per round, medians over rounds: throughput is calls/s through the proxy divided by direct's; CPU per call is the proxy's own, and × divides it by the gRPC server's own (%.1f µs direct); added latency is the proxy's p50 or p99 minus direct's in the same round.\n\n",
		r.Connections, g.Connections, direct.CPUMicrosPerReq)
	fmt.Fprintf(w, "| subject | throughput vs direct | CPU per call | added p50 | added p99 |\n|---|---:|---:|---:|---:|\n")
	for _, row := range g.Rows {
		fmt.Fprintf(w, "| %s | %.2f× | %.1f µs (%.2f×) | %+.2f ms | %+.2f ms |\n",
			row.Name, row.ThroughputRatio, row.CPUPerCall, row.CPURatio, row.AddedP50Ms, row.AddedP99Ms)
	}
	if g.SidecarThroughputRatio > 0 {
		fmt.Fprintf(w, "\ngrpc-jwt-sidecar against grpc-reverseproxy (paired): throughput %.2f×, CPU per call %.2f×.\n", g.SidecarThroughputRatio, g.SidecarCPURatio)
	}
}
