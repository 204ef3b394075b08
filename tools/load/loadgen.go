//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// loadGenerator runs one bounded load and parses what it printed.
type loadGenerator struct {
	name string // "wrk" or "hey"
	path string
}

// loadResult is one load generator run.
type loadResult struct {
	Requests     int64         // completed requests
	Elapsed      time.Duration // as the generator measured it
	RPS          float64
	P50, P99     time.Duration
	Non2xx       int64 // responses outside 2xx/3xx
	SocketErrors int64 // connect, read, write errors and timeouts
	// GeneratorCPU is the load generator's own CPU time.
	GeneratorCPU time.Duration
}

func findLoadGenerator() (loadGenerator, error) {
	for _, name := range []string{"wrk", "hey"} {
		if path, err := exec.LookPath(name); err == nil {
			return loadGenerator{name: name, path: path}, nil
		}
	}
	return loadGenerator{}, errors.New("wrk not installed (apt-get install wrk)")
}

// args is the command line for a run of d against url with c connections on
// t threads, sending the bearer token.
func (g loadGenerator) args(url, token string, d time.Duration, c, t int) []string {
	auth := "Authorization: Bearer " + token
	if g.name == "hey" {
		return []string{"-z", d.String(), "-c", strconv.Itoa(c), "-H", auth, url}
	}
	return []string{
		"-t" + strconv.Itoa(t), "-c" + strconv.Itoa(c), "-d" + strconv.Itoa(int(d/time.Second)) + "s",
		"--latency", "-H", auth, url,
	}
}

// commandLine renders a run for the report, with the token elided.
func (g loadGenerator) commandLine(url string, d time.Duration, c, t int) string {
	args := g.args(url, "<token>", d, c, t)
	for i, a := range args {
		if strings.ContainsAny(a, " <>") {
			args[i] = "'" + a + "'"
		}
	}
	return g.name + " " + strings.Join(args, " ")
}

func (g loadGenerator) run(ctx context.Context, url, token string, d time.Duration, c, t int) (loadResult, error) {
	// The generator stops by itself after d; the deadline only catches a hang.
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.path, g.args(url, token, d, c, t)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("%s: %w: %s%s", g.name, err, stderr.String(), out)
	}
	parse := parseWrk
	if g.name == "hey" {
		parse = parseHey
	}
	r, err := parse(string(out))
	r.GeneratorCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, err
}

// parseWrk parses the output of `wrk --latency`.
func parseWrk(out string) (loadResult, error) {
	var (
		r                   loadResult
		inLatency           bool
		sawRequests, sawRPS bool
		sawP50, sawP99      bool
		errParse            = func(line string, err error) error { return fmt.Errorf("wrk output: %q: %w", line, err) }
	)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case line == "Latency Distribution":
			inLatency = true
		case inLatency && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, errParse(line, err)
			}
			switch f[0] {
			case "50%":
				r.P50, sawP50 = d, true
			case "99%":
				r.P99, sawP99 = d, true
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			// "509876 requests in 10.01s, 61.27MB read"
			inLatency = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, errParse(line, err)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, errParse(line, err)
			}
			r.Requests, r.Elapsed, sawRequests = n, d, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return r, errParse(line, err)
			}
			r.Non2xx = n
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 12, write 0, timeout 3"
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, errParse(line, err)
				}
				r.SocketErrors += n
			}
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return r, errParse(line, err)
			}
			r.RPS, sawRPS = v, true
		}
	}
	if !sawRequests || !sawRPS || !sawP50 || !sawP99 {
		return r, fmt.Errorf("wrk output lacks requests, Requests/sec or the --latency distribution:\n%s", out)
	}
	return r, nil
}

// parseWrkDuration parses wrk's time format: a number with us, ms, s, m or h.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{ // "ms" before "s" and "m"
		{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour},
	}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(v * float64(u.unit)), nil
	}
	return 0, fmt.Errorf("bad duration %q: unknown unit", s)
}

// parseHey parses hey's default summary.
func parseHey(out string) (loadResult, error) {
	var (
		r              loadResult
		section        string
		sawRPS, sawP50 bool
		sawP99         bool
		errParse       = func(line string, err error) error { return fmt.Errorf("hey output: %q: %w", line, err) }
	)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, "["):
			section = line
		case strings.HasPrefix(line, "Total:") && len(f) == 3:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, errParse(line, err)
			}
			r.Elapsed = time.Duration(v * float64(time.Second))
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, errParse(line, err)
			}
			r.RPS, sawRPS = v, true
		case section == "Latency distribution:" && len(f) == 4 && f[1] == "in":
			// "50% in 0.0045 secs"
			v, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return r, errParse(line, err)
			}
			d := time.Duration(v * float64(time.Second))
			switch f[0] {
			case "50%":
				r.P50, sawP50 = d, true
			case "99%":
				r.P99, sawP99 = d, true
			}
		case section == "Status code distribution:" && len(f) == 3 && strings.HasPrefix(f[0], "["):
			// "[200]	500000 responses"
			code, err1 := strconv.Atoi(strings.Trim(f[0], "[]"))
			n, err2 := strconv.ParseInt(f[1], 10, 64)
			if err := errors.Join(err1, err2); err != nil {
				return r, errParse(line, err)
			}
			r.Requests += n
			if code < 200 || code > 399 {
				r.Non2xx += n
			}
		case section == "Error distribution:" && len(f) > 0 && strings.HasPrefix(f[0], "["):
			// "[12]	Get ...: dial tcp ..."
			n, err := strconv.ParseInt(strings.Trim(f[0], "[]"), 10, 64)
			if err != nil {
				return r, errParse(line, err)
			}
			r.SocketErrors += n
		}
	}
	// hey prints no latency distribution when no request got a response.
	if !sawRPS || (r.Requests > 0 && (!sawP50 || !sawP99)) {
		return r, fmt.Errorf("hey output lacks Requests/sec or the latency distribution:\n%s", out)
	}
	return r, nil
}
