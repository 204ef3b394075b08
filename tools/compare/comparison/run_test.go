package comparison

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunThroughRelay runs the real binaries for a few seconds with the
// token service 2 ms away and a revocation list polled every 500 ms: both
// modes behave as they must, every introspection pays at least the round
// trip (a lower bound only, never an upper one), both sidecars refuse the
// revoked probe token, and the timeline draws as well-formed SVG.
func TestRunThroughRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binaries for about 12 s")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	bin := t.TempDir()
	pkgs := []string{"./cmd/jwt-issuer", "./cmd/echo-upstream", "./cmd/jwt-sidecar", "./cmd/jwt-loadgen"}
	cmd := exec.Command(goBin, append([]string{"build", "-o", bin + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = "../../.." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const rtt = 2 * time.Millisecond
	var progress bytes.Buffer
	res, err := Run(t.Context(), Options{
		Bin: bin, Dir: t.TempDir(), Modes: []string{ModeJWT, ModeIntrospection},
		Rate: 50, Concurrency: 8, RTT: rtt, RevocationInterval: 500 * time.Millisecond, SampleEvery: 250 * time.Millisecond,
		Phases:       Phases{Warmup: 500 * time.Millisecond, Steady: 2 * time.Second, Outage: 3 * time.Second, Recovery: time.Second},
		ReadyTimeout: 30 * time.Second, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(res.Failures) > 0 {
		t.Errorf("failures: %q\n%s", res.Failures, progress.String())
	}
	// Measured is a difference of two medians, each of which a busy
	// machine can lengthen: only its presence is certain.
	if res.RTT.Seconds != rtt.Seconds() || res.RTT.Measured == nil || *res.RTT.Measured <= 0 {
		t.Errorf("round trip %+v (measured %v), want %s set and something measured", res.RTT, deref(res.RTT.Measured), rtt)
	}
	for _, m := range res.Modes {
		if m.Revocation == nil || m.Revocation.RefusedAfter == nil {
			t.Errorf("%s: the revoked probe token was not refused: %+v", m.Mode, m.Revocation)
		} else if !strings.Contains(m.Revocation.Challenge, "invalid_token") {
			t.Errorf("%s: refusal challenge %q, want invalid_token", m.Mode, m.Revocation.Challenge)
		}
		if m.Mode == ModeIntrospection {
			// Each introspection crosses the relay once each way.
			if p := m.Steady.VerifyP50; p == nil || *p < rtt.Seconds() {
				t.Errorf("introspection verification p50 = %v, want at least the %s round trip", deref(p), rtt)
			}
		}
	}
	mk := res.Marks
	if !(mk.OutageStart > 0 && mk.OutageEnd > mk.OutageStart && mk.Restarted >= mk.OutageEnd && mk.Recovered > mk.Restarted &&
		mk.Revoked != nil && *mk.Revoked >= mk.Recovered && mk.End >= *mk.Revoked) {
		t.Errorf("marks out of order: %+v", mk)
	}
	if len(res.Timeline) < 8 {
		t.Errorf("%d timeline samples over a %.1f s run sampled every 250 ms", len(res.Timeline), mk.End)
	}
	var svg bytes.Buffer
	if err := (&Report{Runs: []*Results{res}}).WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	for {
		if _, err := dec.Token(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("picture: %v", err)
		}
	}
}
