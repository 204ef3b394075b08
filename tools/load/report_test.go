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
