//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets the load run re-execute the test binary as its upstreams,
// reverse proxy and gRPC load, exactly as it re-executes the command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && slices.Contains([]string{cmdUpstream, cmdReverseProxy, cmdGRPCUpstream, cmdGRPCLoad}, os.Args[1]) {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// requireLoadGenerator skips without wrk or hey, except in CI.
func requireLoadGenerator(t *testing.T) {
	t.Helper()
	if _, err := findLoadGenerator(); err != nil {
		if inCI() {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skip("wrk not installed (apt-get install wrk)")
	}
}

// shortRun is a real but short run: one round of one second, no warm-up.
var shortRun = []string{"-rounds", "1", "-duration", "1s", "-warmup", "0s", "-c", "16"}

// runLoad runs the load command in process and fails the test unless it
// exits 0.
func runLoad(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	t.Logf("go run ./tools/load %s\n%s\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	return stdout.String()
}

// row is one line of the printed table.
type row struct {
	subject string
	rps     float64
	errors  int64
}

// parseTable reads the markdown table the report prints.
func parseTable(t *testing.T, out string) []row {
	t.Helper()
	const header = "| subject | req/s | p50 | p99 | CPU µs/req | peak RSS MiB | errors |"
	_, table, ok := strings.Cut(out, header+"\n")
	if !ok {
		t.Fatalf("no table header %q in output", header)
	}
	lines := strings.Split(table, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "|---") {
		t.Fatalf("no separator line under the header")
	}
	var rows []row
	for _, line := range lines[1:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 7 {
			t.Fatalf("row %q: %d cells, want 7", line, len(cells))
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rps, err := strconv.ParseFloat(cells[1], 64)
		if err != nil {
			t.Fatalf("row %q: req/s: %v", line, err)
		}
		for i, unit := range map[int]string{2: " ms", 3: " ms"} {
			if _, err := strconv.ParseFloat(strings.TrimSuffix(cells[i], unit), 64); err != nil || !strings.HasSuffix(cells[i], unit) {
				t.Fatalf("row %q: latency cell %q", line, cells[i])
			}
		}
		for _, i := range []int{4, 5} {
			if _, err := strconv.ParseFloat(cells[i], 64); err != nil {
				t.Fatalf("row %q: cell %q: %v", line, cells[i], err)
			}
		}
		errs, err := strconv.ParseInt(cells[6], 10, 64)
		if err != nil {
			errs = -1 // "**N ERRORS**"
		}
		rows = append(rows, row{subject: cells[0], rps: rps, errors: errs})
	}
	return rows
}

func checkRows(t *testing.T, rows []row, subjects []string) {
	t.Helper()
	var names []string
	for _, r := range rows {
		names = append(names, r.subject)
		if r.rps <= 0 {
			t.Errorf("%s: req/s = %v, want > 0", r.subject, r.rps)
		}
		if r.errors != 0 {
			t.Errorf("%s: errors = %d, want 0", r.subject, r.errors)
		}
	}
	if !slices.Equal(names, subjects) {
		t.Errorf("table subjects = %v, want %v", names, subjects)
	}
}

func TestLoadRun(t *testing.T) {
	requireLoadGenerator(t)
	subjects := []string{subjectDirect, subjectReverseProxy, subjectGRPCDirect, subjectGRPCReverseProxy}
	// Without nginx the row is skipped, except in CI where run fails.
	if _, err := findNginx(""); err == nil || inCI() {
		subjects = append(subjects, subjectNginx)
	}
	jsonPath := filepath.Join(t.TempDir(), ".bench", "load.json") // a directory that does not exist yet
	args := append(slices.Clone(shortRun), "-subjects", strings.Join(subjects, ","), "-json", jsonPath)
	out := runLoad(t, args...)

	checkRows(t, parseTable(t, out), subjects)
	if !strings.Contains(out, "Not checked: jwt-sidecar was not measured.") {
		t.Errorf("no note that the targets were not checked")
	}
	if !strings.Contains(out, "command: go run ./tools/load -rounds 1") {
		t.Errorf("the report does not print the command")
	}

	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("-json: %v", err)
	}
	if len(res.Subjects) != len(subjects) {
		t.Fatalf("-json: %d subjects, want %d", len(res.Subjects), len(subjects))
	}
	if res.GRPC == nil || len(res.GRPC.Rows) != 1 || res.GRPC.Rows[0].Name != subjectGRPCReverseProxy ||
		res.GRPC.Rows[0].ThroughputRatio <= 0 || res.GRPC.Rows[0].CPUPerCall <= 0 {
		t.Errorf("-json: gRPC summary %+v, want the grpc-reverseproxy row against direct", res.GRPC)
	}
	if !strings.Contains(out, "### gRPC over h2c against direct") || !strings.Contains(out, "gRPC:    go run ./tools/load __grpcload") {
		t.Errorf("the report lacks the gRPC table or its load command")
	}
	for _, s := range res.Subjects {
		if len(s.Runs) != 1 {
			t.Fatalf("%s: %d runs, want 1", s.Name, len(s.Runs))
		}
		r := s.Runs[0]
		if r.Requests <= 0 || r.CPUMicrosPerReq <= 0 || r.PeakRSSBytes <= 0 {
			t.Errorf("%s: requests %d, CPU %v µs/req, peak RSS %d B: want all > 0", s.Name, r.Requests, r.CPUMicrosPerReq, r.PeakRSSBytes)
		}
		// Every request the generator completed went through to the upstream.
		if r.UpstreamRequests < r.Requests {
			t.Errorf("%s: upstream answered %d requests, generator completed %d", s.Name, r.UpstreamRequests, r.Requests)
		}
		// Pooling proxies open at most about one connection per client
		// connection, never one per request.
		if !reuses(s.Name, 16, r) {
			t.Errorf("%s: %d new upstream connections for %d requests with 16 client connections", s.Name, r.UpstreamConns, r.UpstreamRequests)
		}
	}
}

func TestLoadRunSidecar(t *testing.T) {
	requireLoadGenerator(t)
	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(bin, "jwt-sidecar"), "./cmd/jwt-sidecar")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("jwt-sidecar does not build yet, so it is not measured (%v):\n%s", err, out)
		if inCI() {
			t.Fatal("CI=true: " + msg)
		}
		t.Skip(msg)
	}
	subjects := []string{subjectReverseProxy, subjectSidecar, subjectGRPCDirect, subjectGRPCSidecar}
	out := runLoad(t, append(slices.Clone(shortRun), "-bin", bin, "-subjects", strings.Join(subjects, ","))...)
	checkRows(t, parseTable(t, out), subjects)
	// One-second runs are too noisy to hold to the targets; only that they
	// are checked and printed.
	for _, want := range []string{"throughput ratio", "CPU per request ratio", "peak RSS", "new upstream connections"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks the %q check", want)
		}
	}
	if strings.Contains(out, "NOTE: jwt-sidecar preflight") || strings.Contains(out, "NOTE: grpc-jwt-sidecar preflight") {
		t.Errorf("a jwt-sidecar preflight found a problem")
	}
	if !strings.Contains(out, "| grpc-jwt-sidecar | ") || !strings.Contains(out, "### gRPC over h2c against direct") {
		t.Errorf("the report lacks the gRPC row of jwt-sidecar")
	}
}

func TestMissingTools(t *testing.T) {
	// Neither wrk nor hey in an empty PATH.
	t.Setenv("PATH", t.TempDir())
	for _, tt := range []struct {
		ci       string
		wantCode int
	}{
		{ci: "", wantCode: exitMissingTool},
		{ci: "true", wantCode: exitFail},
	} {
		t.Setenv("CI", tt.ci)
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"-subjects", "direct"}, &stdout, &stderr)
		if code != tt.wantCode {
			t.Errorf("CI=%q: exit code %d, want %d", tt.ci, code, tt.wantCode)
		}
		if !strings.Contains(stderr.String(), "wrk not installed (apt-get install wrk)") {
			t.Errorf("CI=%q: stderr %q does not say how to install wrk", tt.ci, stderr.String())
		}
	}
}

func TestMissingNginx(t *testing.T) {
	requireLoadGenerator(t)
	missing := filepath.Join(t.TempDir(), "nginx")
	for _, tt := range []struct {
		ci         string
		wantStdout string
		wantStderr string
	}{
		// nginx is the only subject: skipping it leaves nothing.
		{ci: "", wantStdout: "NOTE: the nginx row is skipped", wantStderr: "nothing left to measure"},
		{ci: "true", wantStderr: "CI=true: nginx is required"},
	} {
		t.Setenv("CI", tt.ci)
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"-subjects", "nginx", "-nginx", missing}, &stdout, &stderr)
		if code != exitFail {
			t.Errorf("CI=%q: exit code %d, want %d", tt.ci, code, exitFail)
		}
		if !strings.Contains(stdout.String(), tt.wantStdout) || !strings.Contains(stderr.String(), tt.wantStderr) {
			t.Errorf("CI=%q: stdout %q, stderr %q; want %q and %q", tt.ci, stdout.String(), stderr.String(), tt.wantStdout, tt.wantStderr)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "unknown subject", args: []string{"-subjects", "direct,envoy"}, wantErr: `unknown subject "envoy"`},
		{name: "twice", args: []string{"-subjects", "direct,direct"}, wantErr: "given twice"},
		{name: "fractional duration", args: []string{"-duration", "1500ms"}, wantErr: "-duration"},
		{name: "negative warmup", args: []string{"-warmup", "-1s"}, wantErr: "-warmup"},
		{name: "no rounds", args: []string{"-rounds", "0"}, wantErr: "-rounds"},
		{name: "no connections", args: []string{"-c", "0"}, wantErr: "-c"},
		{name: "argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "bad sidecar env", args: []string{"-sidecar-env", "GOGC"}, wantErr: "KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, err := parseFlags(tt.args, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !slices.Equal(cfg.subjects, allSubjects) || cfg.rounds != 10 || cfg.connections != 256 || cfg.binDir != "bin" {
					t.Errorf("defaults = %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	// wrk refuses fewer connections than threads.
	cfg, err := parseFlags([]string{"-c", "1", "-t", "4"}, &bytes.Buffer{})
	if err != nil || cfg.threads != 1 {
		t.Errorf("-c 1 -t 4: threads %d, err %v; want 1, nil", cfg.threads, err)
	}
}
