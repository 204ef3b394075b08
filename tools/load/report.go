//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets for jwt-sidecar against the plain reverse proxy.
const (
	targetThroughputRatio = 0.90 // at least
	targetCPURatio        = 1.15 // at most
	targetPeakRSSMiB      = 32.0 // at most, at the default 256 connections
	// A proxy that reuses upstream connections opens about as many as it
	// has concurrent requests; one that does not opens one per request.
	reuseFactor = 2
	// Above this share of the machine used by other processes, the report
	// warns that the numbers are noisy.
	noisyOtherCPUPercent = 10
)

// check is one target, PASS or FAIL.
type check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Pass   bool    `json:"pass"`
}

func (c check) verdict() string {
	if c.Pass {
		return "PASS"
	}
	return "FAIL"
}

// pairedRatio is the median over rounds of side's value divided by base's
// in the same round: runs of one round are minutes apart at most, so a
// paired ratio cancels most of the drift a loaded machine adds.
func pairedRatio(side, base *subjectResult, f func(runResult) float64) float64 {
	var ratios []float64
	for _, s := range side.Runs {
		for _, b := range base.Runs {
			if s.Round == b.Round && f(b) > 0 {
				ratios = append(ratios, f(s)/f(b))
			}
		}
	}
	return median(ratios)
}

// checks compares jwt-sidecar with reverseproxy by paired ratios. A check
// that needs a subject that was not measured is left out.
func checks(r *results, connections int) []check {
	side := r.subject(subjectSidecar)
	if side == nil {
		return nil
	}
	var cs []check
	if rp := r.subject(subjectReverseProxy); rp != nil && rp.RPS > 0 && rp.CPUMicrosPerReq > 0 {
		tr := pairedRatio(side, rp, func(r runResult) float64 { return r.RPS })
		cr := pairedRatio(side, rp, func(r runResult) float64 { return r.CPUMicrosPerReq })
		cs = append(cs,
			check{Name: "throughput ratio (req/s jwt-sidecar / reverseproxy)", Value: tr, Target: fmt.Sprintf(">= %.2f", targetThroughputRatio), Pass: tr >= targetThroughputRatio},
			check{Name: "CPU per request ratio (jwt-sidecar / reverseproxy)", Value: cr, Target: fmt.Sprintf("<= %.2f", targetCPURatio), Pass: cr <= targetCPURatio},
		)
	}
	// The target is set for 256 connections; the name says what was run.
	cs = append(cs, check{Name: fmt.Sprintf("jwt-sidecar peak RSS MiB at %d connections", connections), Value: side.PeakRSSMiB, Target: fmt.Sprintf("<= %.0f", targetPeakRSSMiB), Pass: side.PeakRSSMiB <= targetPeakRSSMiB})
	worst := maxConns(side)
	cs = append(cs, check{
		Name:   "jwt-sidecar new upstream connections per run (most)",
		Value:  float64(worst),
		Target: fmt.Sprintf("<= %d (%d x connections)", reuseFactor*connections, reuseFactor),
		Pass:   worst <= int64(reuseFactor*connections),
	})
	return cs
}

// nginxKeepaliveRequests is nginx's default keepalive_requests: it closes an
// upstream connection after this many requests and opens a new one.
const nginxKeepaliveRequests = 1000

// reuses reports whether a run opened no more upstream connections than a
// proxy that reuses them would.
func reuses(subject string, connections int, run runResult) bool {
	limit := int64(reuseFactor * connections)
	if subject == subjectNginx {
		limit += run.UpstreamRequests / nginxKeepaliveRequests
	}
	return run.UpstreamConns <= limit
}

func allReuse(s subjectResult, connections int) bool {
	for _, run := range s.Runs {
		if !reuses(s.Name, connections, run) {
			return false
		}
	}
	return true
}

func maxConns(s *subjectResult) int64 {
	var n int64
	for _, r := range s.Runs {
		n = max(n, r.UpstreamConns)
	}
	return n
}

// writeReport prints the markdown report.
func writeReport(w io.Writer, r *results) {
	fmt.Fprintf(w, "## Load run\n\n")
	fmt.Fprintf(w, "| subject | req/s | p50 | p99 | CPU µs/req | peak RSS MiB | errors |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Subjects {
		errs := strconv.FormatInt(s.Errors, 10)
		if s.Errors > 0 {
			errs = "**" + errs + " ERRORS**"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f ms | %.2f ms | %.1f | %.1f | %s |\n",
			s.Name, s.RPS, s.P50Ms, s.P99Ms, s.CPUMicrosPerReq, s.PeakRSSMiB, errs)
	}
	fmt.Fprintf(w, "\nMedians over %d round(s) of %s each (warm-up %s before every run; order rotated, and reversed every other round; ratios are medians of per-round ratios), %d connections, %d load threads.\n",
		r.Rounds, r.Duration, r.Warmup, r.Connections, r.Threads)
	fmt.Fprintf(w, "CPU is utime+stime from /proc/PID/stat over the measured run divided by the requests completed; peak RSS is the largest VmHWM seen (nginx: master and workers summed). direct is the upstream's own cost.\n")

	var other []float64
	for _, s := range r.Subjects {
		for _, run := range s.Runs {
			other = append(other, run.OtherCPUPercent)
		}
	}
	if len(other) > 0 {
		worst := slices.Max(other)
		fmt.Fprintf(w, "Other processes on the machine used %.0f%% of its CPU during the median run (%.0f%% in the worst).\n", median(other), worst)
		if worst > noisyOtherCPUPercent {
			fmt.Fprintf(w, "\n**WARNING: the machine was busy with other work (up to %.0f%% of its CPU) during the measurement: the numbers are noisy; rerun on a quiet machine.**\n", worst)
		}
	}

	for _, s := range r.Subjects {
		if s.Errors > 0 {
			fmt.Fprintf(w, "\n**ERROR: %s answered %d requests with a non-2xx status or a socket error; its numbers are not a measurement.**\n", s.Name, s.Errors)
		}
	}

	writeRatios(w, r)
	writeGRPC(w, r)

	fmt.Fprintf(w, "\n### jwt-sidecar vs reverseproxy\n\n")
	if len(r.Checks) == 0 {
		fmt.Fprintf(w, "Not checked: jwt-sidecar was not measured.\n")
	} else {
		fmt.Fprintf(w, "| check | value | target | result |\n|---|---:|---|---|\n")
		for _, c := range r.Checks {
			fmt.Fprintf(w, "| %s | %.2f | %s | %s |\n", c.Name, c.Value, c.Target, c.verdict())
		}
	}

	fmt.Fprintf(w, "\n### Upstream connections\n\n")
	fmt.Fprintf(w, "New connections the upstream accepted during each measured run. A proxy that reuses connections opens at most about %d: those it re-dials because the previous load stopped mid-request, or because nginx retires one after keepalive_requests (1000). One that does not reuse opens one per request.\n\n", r.Connections)
	fmt.Fprintf(w, "| subject | new upstream conns per round | upstream requests per round | reuse |\n|---|---|---|---|\n")
	for _, s := range r.Subjects {
		conns := make([]string, len(s.Runs))
		reqs := make([]string, len(s.Runs))
		for i, run := range s.Runs {
			conns[i] = strconv.FormatInt(run.UpstreamConns, 10)
			reqs[i] = strconv.FormatInt(run.UpstreamRequests, 10)
		}
		reuse := "yes"
		if s.Name == subjectDirect || s.Name == subjectGRPCDirect {
			reuse = "n/a: the load generator's own connections"
		} else if !allReuse(s, r.Connections) {
			reuse = fmt.Sprintf("**NO: %d new connections in one run**", maxConns(&s))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.Name, strings.Join(conns, ", "), strings.Join(reqs, ", "), reuse)
	}

	if len(r.SidecarMetrics) > 0 {
		fmt.Fprintf(w, "\n### jwt-sidecar's own metrics after the run\n\n```\n%s\n```\n", strings.Join(r.SidecarMetrics, "\n"))
		if d, ok := meanVerification(r.SidecarMetrics); ok {
			fmt.Fprintf(w, "Mean verification (jwt mode, token cache included): %.1f µs.\n", float64(d)/float64(time.Microsecond))
		}
		fmt.Fprintf(w, "Its default logging wrote %.0f bytes per request.\n", r.SidecarLogBytesPerRequest)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNOTE: %s\n", n)
	}

	m := r.Machine
	fmt.Fprintf(w, "\nmachine: %d CPUs, %s, Linux %s, %s", m.NProc, m.CPU, m.Kernel, m.GoVersion)
	if m.SidecarGo != "" {
		fmt.Fprintf(w, " (jwt-sidecar built with %s)", m.SidecarGo)
	}
	if m.Nginx != "" {
		fmt.Fprintf(w, ", %s", m.Nginx)
	}
	if m.OAuth2Proxy != "" {
		fmt.Fprintf(w, ", %s", m.OAuth2Proxy)
	}
	fmt.Fprintf(w, ", %s\n", m.LoadGenerator)
	fmt.Fprintf(w, "command: %s\n", r.Command)
	fmt.Fprintf(w, "load:    %s\n", r.LoadCommand)
	if r.GRPCLoadCommand != "" {
		fmt.Fprintf(w, "gRPC:    %s\n", r.GRPCLoadCommand)
	}
}

// pairedDiff is the median over rounds of side's value minus base's in the
// same round.
func pairedDiff(side, base *subjectResult, f func(runResult) float64) float64 {
	var diffs []float64
	for _, s := range side.Runs {
		for _, b := range base.Runs {
			if s.Round == b.Round {
				diffs = append(diffs, f(s)-f(b))
			}
		}
	}
	return median(diffs)
}

// writeRatios prints every proxy against the plain reverse proxy: paired
// ratios of throughput and CPU per request, the latency each adds to the
// upstream's own (its p50 and p99 minus direct's, same round), and peak RSS.
// It is the table of make peers; without reverseproxy there is no base.
func writeRatios(w io.Writer, r *results) {
	rp := r.subject(subjectReverseProxy)
	if rp == nil || rp.RPS == 0 || len(r.Subjects) < 2 {
		return
	}
	direct := r.subject(subjectDirect)
	added := func(s *subjectResult, f func(runResult) float64) string {
		if direct == nil {
			return "n/a (direct not measured)"
		}
		d := pairedDiff(s, direct, f)
		base := pairedDiff(rp, direct, f)
		if base <= 0 {
			return fmt.Sprintf("%+.2f ms", d)
		}
		return fmt.Sprintf("%+.2f ms (%.2f×)", d, d/base)
	}
	fmt.Fprintf(w, "\n### Against the plain reverse proxy\n\n")
	fmt.Fprintf(w, "Paired per round, medians over rounds: × is the subject's value divided by reverseproxy's; added latency is the subject's p50 or p99 minus direct's in the same round, and × divides it by what reverseproxy adds.\n\n")
	fmt.Fprintf(w, "| subject | throughput | CPU per request | added p50 | added p99 | peak RSS |\n|---|---:|---:|---:|---:|---:|\n")
	for i := range r.Subjects {
		s := &r.Subjects[i]
		if s.Name == subjectDirect || isGRPC(s.Name) {
			continue // the gRPC row has its own table, against grpc-direct
		}
		rss := "n/a"
		if rp.PeakRSSMiB > 0 {
			rss = fmt.Sprintf("%.1f MiB (%.2f×)", s.PeakRSSMiB, s.PeakRSSMiB/rp.PeakRSSMiB)
		}
		fmt.Fprintf(w, "| %s | %.2f× | %.2f× | %s | %s | %s |\n", s.Name,
			pairedRatio(s, rp, func(r runResult) float64 { return r.RPS }),
			pairedRatio(s, rp, func(r runResult) float64 { return r.CPUMicrosPerReq }),
			added(s, func(r runResult) float64 { return r.P50Ms }),
			added(s, func(r runResult) float64 { return r.P99Ms }),
			rss)
	}
}
