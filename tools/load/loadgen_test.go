//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The samples in testdata are real wrk 4.1.0 and hey 0.1.4 output, captured
// on 127.0.0.1 against a small server answering 200, 401 or slowly.
func TestParseLoadOutput(t *testing.T) {
	tests := []struct {
		file  string
		parse func(string) (loadResult, error)
		want  loadResult
	}{
		{
			file:  "wrk-ok.txt",
			parse: parseWrk,
			want: loadResult{
				Requests: 55166, Elapsed: 2010 * time.Millisecond, RPS: 27438.62,
				P50: 2120 * time.Microsecond, P99: 9 * time.Millisecond,
			},
		},
		{
			file:  "wrk-non2xx.txt",
			parse: parseWrk,
			want: loadResult{
				Requests: 37358, Elapsed: time.Second, RPS: 37188.87,
				P50: 1640 * time.Microsecond, P99: 7950 * time.Microsecond, Non2xx: 37358,
			},
		},
		{
			file:  "wrk-timeout.txt",
			parse: parseWrk,
			want: loadResult{
				Requests: 20, Elapsed: 3010 * time.Millisecond, RPS: 6.65,
				P50: 901300 * time.Microsecond, P99: 901590 * time.Microsecond, SocketErrors: 3,
			},
		},
		{
			file:  "hey-ok.txt",
			parse: parseHey,
			want: loadResult{
				Requests: 13529, Elapsed: 1000800 * time.Microsecond, RPS: 13518.4891,
				P50: time.Millisecond, P99: 5600 * time.Microsecond,
			},
		},
		{
			file:  "hey-mixed.txt",
			parse: parseHey,
			want: loadResult{
				Requests: 11010, Elapsed: 1002 * time.Millisecond, RPS: 10988.4624,
				P50: 1200 * time.Microsecond, P99: 4500 * time.Microsecond, Non2xx: 1101,
			},
		},
		{
			file:  "hey-refused.txt",
			parse: parseHey,
			want:  loadResult{Elapsed: 1000600 * time.Microsecond, RPS: 8501.5185, SocketErrors: 8507},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.parse(string(b))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			// Durations parsed from decimal text may be off by a rounding
			// nanosecond.
			near := func(a, b time.Duration) bool { return (a - b).Abs() <= time.Microsecond }
			if got.Requests != tt.want.Requests || got.RPS != tt.want.RPS ||
				got.Non2xx != tt.want.Non2xx || got.SocketErrors != tt.want.SocketErrors ||
				!near(got.Elapsed, tt.want.Elapsed) || !near(got.P50, tt.want.P50) || !near(got.P99, tt.want.P99) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseWrkRejectsIncompleteOutput(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "wrk-ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// Without --latency wrk prints no distribution: p50 and p99 are unknown.
	var kept []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.Contains(line, "%    ") && !strings.Contains(line, "Latency Distribution") {
			kept = append(kept, line)
		}
	}
	for _, out := range []string{"", "unable to connect to 127.0.0.1:1 Connection refused\n", strings.Join(kept, "\n")} {
		if _, err := parseWrk(out); err == nil {
			t.Errorf("parseWrk(%q) = nil error, want one", out)
		}
	}
}

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{in: "812.00us", want: 812 * time.Microsecond},
		{in: "4.73ms", want: 4730 * time.Microsecond},
		{in: "1.02s", want: 1020 * time.Millisecond},
		{in: "2.00m", want: 2 * time.Minute},
		{in: "1.00h", want: time.Hour},
	}
	for _, tt := range tests {
		got, err := parseWrkDuration(tt.in)
		if err != nil || (got-tt.want).Abs() > time.Microsecond {
			t.Errorf("parseWrkDuration(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "12", "ms", "1.2x", "abcms"} {
		if _, err := parseWrkDuration(in); err == nil {
			t.Errorf("parseWrkDuration(%q): no error", in)
		}
	}
}

func TestLoadGeneratorArgs(t *testing.T) {
	wrk := loadGenerator{name: "wrk", path: "/usr/bin/wrk"}
	got := wrk.commandLine("http://127.0.0.1:7070/", 10*time.Second, 256, 2)
	want := "wrk -t2 -c256 -d10s --latency -H 'Authorization: Bearer <token>' http://127.0.0.1:7070/"
	if got != want {
		t.Errorf("wrk command = %q, want %q", got, want)
	}
	hey := loadGenerator{name: "hey", path: "/usr/bin/hey"}
	got = hey.commandLine("http://127.0.0.1:7070/", 10*time.Second, 256, 2)
	want = "hey -z 10s -c 256 -H 'Authorization: Bearer <token>' http://127.0.0.1:7070/"
	if got != want {
		t.Errorf("hey command = %q, want %q", got, want)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{in: nil, want: 0},
		{in: []float64{3}, want: 3},
		{in: []float64{9, 1, 5}, want: 5},
		{in: []float64{4, 1, 3, 2}, want: 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
