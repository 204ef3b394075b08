package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/compare/comparison"
	"github.com/jwt-sidecar/jwt-sidecar/tools/report"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name                            string
		args                            []string
		wantSteady, wantOutage, wantRec time.Duration
		wantModes                       int
		wantErr                         string
	}{
		{name: "defaults", wantSteady: 20 * time.Second, wantOutage: 10 * time.Second, wantRec: 5 * time.Second, wantModes: 2},
		{name: "quick", args: []string{"-quick"}, wantSteady: 3 * time.Second, wantOutage: 3 * time.Second, wantRec: 2 * time.Second, wantModes: 2},
		{name: "quick keeps what is given", args: []string{"-quick", "-outage", "7s"}, wantSteady: 3 * time.Second, wantOutage: 7 * time.Second, wantRec: 2 * time.Second, wantModes: 2},
		{name: "one mode", args: []string{"-modes", " jwt "}, wantSteady: 20 * time.Second, wantOutage: 10 * time.Second, wantRec: 5 * time.Second, wantModes: 1},
		{name: "unknown mode", args: []string{"-modes", "jwt,session"}, wantErr: `unknown mode "session"`},
		{name: "no rate", args: []string{"-rate", "0"}, wantErr: "rate:"},
		{name: "no steady phase", args: []string{"-steady", "0s"}, wantErr: "steady: must be positive"},
		{name: "stray argument", args: []string{"now"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := c.opts
			if o.Steady != tt.wantSteady || o.Outage != tt.wantOutage || o.Recovery != tt.wantRec || len(o.Modes) != tt.wantModes {
				t.Errorf("steady %s, outage %s, recovery %s, modes %q; want %s, %s, %s and %d modes",
					o.Steady, o.Outage, o.Recovery, o.Modes, tt.wantSteady, tt.wantOutage, tt.wantRec, tt.wantModes)
			}
		})
	}
}

func TestParseRTTs(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		want           []time.Duration
		wantRevocation time.Duration
		wantErr        string
	}{
		{name: "defaults: loopback, same zone, cross zone, SaaS", want: []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond, 50 * time.Millisecond}, wantRevocation: 10 * time.Second},
		{name: "one", args: []string{"-rtt", "2ms"}, want: []time.Duration{2 * time.Millisecond}, wantRevocation: 10 * time.Second},
		{name: "quick polls the list more often", args: []string{"-quick", "-rtt", "0, 1ms"}, want: []time.Duration{0, time.Millisecond}, wantRevocation: quickRevocation},
		{name: "quick keeps a given interval", args: []string{"-quick", "-rtt", "0", "-revocation-interval", "5s"}, want: []time.Duration{0}, wantRevocation: 5 * time.Second},
		{name: "no revocation phase", args: []string{"-revocation-interval", "0"}, want: []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond, 50 * time.Millisecond}},
		{name: "not a duration", args: []string{"-rtt", "2"}, wantErr: `rtt: "2"`},
		{name: "negative", args: []string{"-rtt", "-1ms"}, wantErr: "rtt: want 0 to 10s"},
		{name: "none", args: []string{"-rtt", " , "}, wantErr: "rtt: none given"},
		{name: "interval too short", args: []string{"-revocation-interval", "1ms"}, wantErr: "revocation interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.rtts, tt.want) || c.opts.RevocationInterval != tt.wantRevocation {
				t.Errorf("rtts %v, revocation interval %s; want %v, %s", c.rtts, c.opts.RevocationInterval, tt.want, tt.wantRevocation)
			}
		})
	}
}

func TestUsageExitCode(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"-modes", ""}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "modes: none given") {
		t.Errorf("exit %d, stderr %q; want %d and the problem", code, errOut.String(), exitUsage)
	}
	if code := run(t.Context(), []string{"-bin", t.TempDir(), "-dir", t.TempDir(), "-quick"}, &out, &errOut); code != exitFail || !strings.Contains(errOut.String(), "jwt-issuer not found") {
		t.Errorf("exit %d, stderr %q; want %d and the missing binary", code, errOut.String(), exitFail)
	}
}

// TestReplot prints and draws a saved report without running anything.
func TestReplot(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "compare.json")
	rp := comparison.Report{Command: "go run ./tools/compare -rtt 2ms", Runs: []*comparison.Results{{
		Rate: 200, RTT: comparison.RTT{Seconds: 0.002}, Modes: []comparison.ModeStats{{Mode: comparison.ModeJWT}},
	}}}
	if err := report.WriteJSON(saved, rp); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(dir, "out", "compare.svg")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"-replot", saved, "-svg", svg}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"token service 2 ms away", "by distance to the token service", "command: go run ./tools/compare -rtt 2ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("picture: %v, %.80q", err, b)
	}
	if code := run(t.Context(), []string{"-replot", filepath.Join(dir, "missing.json")}, &out, &errOut); code != exitFail {
		t.Errorf("a missing report: exit %d, want %d", code, exitFail)
	}
}
