package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/tools/compare/comparison"
)

// The short comparison of step (g): long enough to see the difference, far
// too short to quote; `make compare` is the measurement.
const (
	compareRate        = 100
	compareConcurrency = 16
)

// stepCompare is (g): the same requests through a stateless sidecar and an
// introspecting one, on a separate stack, while the issuer is killed and
// restarted.
func (d *demo) stepCompare(ctx context.Context) {
	d.heading("(g) The stateless win, measured: jwt vs introspection through an issuer outage")
	d.say("A separate stack on free ports: an issuer, the echo app, a sidecar per mode, and jwt-loadgen sending")
	d.say("%d requests/s through each. After %s steady, the issuer is killed for %s, then restarted.", compareRate, comparison.Quick.Steady, comparison.Quick.Outage)
	bin, err := filepath.Abs(d.opts.bin)
	if err != nil {
		d.unexpectedf("%v", err)
		return
	}
	modes, err := comparison.SidecarModes(ctx, bin)
	if err != nil {
		d.unexpectedf("%v", err)
		return
	}
	if len(modes) == 1 {
		d.say("This jwt-sidecar build has no introspection mode (AUTH_MODE=introspection): jwt mode alone.")
	}
	o := comparison.Options{
		Bin: bin, Dir: filepath.Join(d.opts.dir, "compare"), Modes: modes,
		Rate: compareRate, Concurrency: compareConcurrency,
		Phases: comparison.Quick, ReadyTimeout: d.opts.timeout, Progress: d.out,
	}
	res, err := comparison.Run(ctx, o)
	if err != nil {
		d.unexpectedf("the comparison did not run: %v", err)
		return
	}
	res.Command = fmt.Sprintf("go run ./tools/compare -bin %s -quick -rate %d -concurrency %d -modes %s",
		d.opts.bin, compareRate, compareConcurrency, strings.Join(modes, ","))
	fmt.Fprintln(d.out)
	res.WriteTable(d.out)
	// WriteTable printed each failure; count them as the demo's own.
	d.unexpected += len(res.Failures)
	if len(modes) > 1 {
		d.say("Local verification kept serving while the issuer was down; an introspecting sidecar cannot decide without it.")
	} else {
		d.say("Local verification kept serving while the issuer was down: no call to it on the request path.")
	}
	d.say("For numbers worth quoting: make compare (20 s steady, 10 s outage, 200 requests/s).")
}
