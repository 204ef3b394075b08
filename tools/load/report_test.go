//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestChecks(t *testing.T) {
	rp := subjectResult{Name: subjectReverseProxy, RPS: 10000, CPUMicrosPerReq: 100, Runs: []runResult{{Round: 1, RPS: 10000, CPUMicrosPerReq: 100, UpstreamConns: 3}}}
	tests := []struct {
		name     string
		sidecar  subjectResult
		wantPass []bool // throughput, CPU, RSS, reuse
	}{
		{
			name:     "all pass",
			sidecar:  subjectResult{Name: subjectSidecar, RPS: 9000, CPUMicrosPerReq: 115, PeakRSSMiB: 32, Runs: []runResult{{Round: 1, RPS: 9000, CPUMicrosPerReq: 115, UpstreamConns: 512}}},
			wantPass: []bool{true, true, true, true},
		},
		{
			name:     "all fail",
			sidecar:  subjectResult{Name: subjectSidecar, RPS: 8999, CPUMicrosPerReq: 116, PeakRSSMiB: 32.1, Runs: []runResult{{Round: 1, RPS: 8999, CPUMicrosPerReq: 116}, {Round: 2, UpstreamConns: 513}}},
			wantPass: []bool{false, false, false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &results{Subjects: []subjectResult{rp, tt.sidecar}, Connections: 256, Rounds: 1}
			r.Checks = checks(r, 256)
			if len(r.Checks) != len(tt.wantPass) {
				t.Fatalf("%d checks, want %d", len(r.Checks), len(tt.wantPass))
			}
			for i, c := range r.Checks {
				if c.Pass != tt.wantPass[i] {
					t.Errorf("%s = %.3f: pass %t, want %t", c.Name, c.Value, c.Pass, tt.wantPass[i])
				}
			}
			if got, want := r.anyFail(), tt.name == "all fail"; got != want {
				t.Errorf("anyFail = %t, want %t", got, want)
			}
			var out bytes.Buffer
			writeReport(&out, r)
			rows := parseTable(t, out.String())
			if len(rows) != 2 {
				t.Errorf("%d rows, want 2", len(rows))
			}
			if got := strings.Count(out.String(), "| FAIL |"); got != strings.Count(tt.name, "fail")*4 {
				t.Errorf("%d FAIL lines in\n%s", got, out.String())
			}
		})
	}
}

func TestChecksWithoutSidecar(t *testing.T) {
	r := &results{Subjects: []subjectResult{{Name: subjectDirect}}}
	if cs := checks(r, 256); len(cs) != 0 {
		t.Errorf("checks without jwt-sidecar = %v, want none", cs)
	}
	// Without the baseline only the absolute target is checked.
	r = &results{Subjects: []subjectResult{{Name: subjectSidecar, PeakRSSMiB: 20}}}
	cs := checks(r, 256)
	if len(cs) != 2 || !cs[0].Pass || !cs[1].Pass {
		t.Errorf("checks without reverseproxy = %+v, want RSS and reuse, passing", cs)
	}
}

func TestReportFlagsErrors(t *testing.T) {
	r := &results{Subjects: []subjectResult{{Name: subjectSidecar, RPS: 100, Errors: 7}}, Connections: 16}
	if r.errorCount() != 7 {
		t.Errorf("errorCount = %d, want 7", r.errorCount())
	}
	var out bytes.Buffer
	writeReport(&out, r)
	if !strings.Contains(out.String(), "**7 ERRORS**") || !strings.Contains(out.String(), "**ERROR: jwt-sidecar answered 7 requests") {
		t.Errorf("errors not shown loudly:\n%s", out.String())
	}
}

func TestReuses(t *testing.T) {
	tests := []struct {
		subject string
		run     runResult
		want    bool
	}{
		{subject: subjectReverseProxy, run: runResult{UpstreamConns: 512, UpstreamRequests: 1e6}, want: true},
		{subject: subjectReverseProxy, run: runResult{UpstreamConns: 513, UpstreamRequests: 1e6}, want: false},
		// nginx retires a connection every 1000 requests.
		{subject: subjectNginx, run: runResult{UpstreamConns: 1512, UpstreamRequests: 1e6}, want: true},
		{subject: subjectNginx, run: runResult{UpstreamConns: 5000, UpstreamRequests: 1e6}, want: false},
		{subject: subjectSidecar, run: runResult{UpstreamConns: 90000, UpstreamRequests: 90000}, want: false},
	}
	for _, tt := range tests {
		if got := reuses(tt.subject, 256, tt.run); got != tt.want {
			t.Errorf("reuses(%s, 256, %+v) = %t, want %t", tt.subject, tt.run, got, tt.want)
		}
	}
}

// TestSummarizeGRPC pairs the gRPC subjects per round: against grpc-direct
// for each proxy, and jwt-sidecar against the plain reverse proxy; the
// HTTP/1.1 ratio table leaves them out.
func TestSummarizeGRPC(t *testing.T) {
	runs := func(rps ...float64) []runResult {
		var rs []runResult
		for i, v := range rps {
			rs = append(rs, runResult{Round: i + 1, RPS: v, CPUMicrosPerReq: 1e6 / v, P50Ms: 1000 / v, P99Ms: 2000 / v})
		}
		return rs
	}
	direct := subjectResult{Name: subjectGRPCDirect, Runs: runs(20000, 10000)}
	rp := subjectResult{Name: subjectGRPCReverseProxy, Runs: runs(5000, 2000)}
	side := subjectResult{Name: subjectGRPCSidecar, Runs: runs(4000, 2200)}
	r := &results{Subjects: []subjectResult{direct, rp, side}, Connections: 64}
	for i := range r.Subjects {
		r.Subjects[i].summarize()
	}
	if summarizeGRPC(&results{Subjects: []subjectResult{rp, side}}, 4) != nil {
		t.Error("a summary without grpc-direct")
	}
	g := summarizeGRPC(r, 4)
	if g == nil || len(g.Rows) != 2 {
		t.Fatalf("summary %+v, want two rows", g)
	}
	// Per round 0.25 and 0.2 (median 0.225); 0.2 and 0.22 (median 0.21).
	if got := g.Rows[0]; got.Name != subjectGRPCReverseProxy || !near(got.ThroughputRatio, 0.225) || !near(got.CPURatio, 4.5) {
		t.Errorf("reverseproxy row %+v", got)
	}
	if got := g.Rows[1]; got.Name != subjectGRPCSidecar || !near(got.ThroughputRatio, 0.21) {
		t.Errorf("sidecar row %+v", got)
	}
	// 0.8 and 1.1 against the reverse proxy: median 0.95.
	if !near(g.SidecarThroughputRatio, 0.95) {
		t.Errorf("sidecar against reverseproxy %v, want 0.95", g.SidecarThroughputRatio)
	}
	r.GRPC = g
	var out bytes.Buffer
	writeReport(&out, r)
	for _, want := range []string{"### gRPC over h2c against direct", "| grpc-jwt-sidecar | 0.21× |", "throughput 0.95×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "### Against the plain reverse proxy") {
		t.Error("the HTTP/1.1 ratio table printed without reverseproxy")
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
