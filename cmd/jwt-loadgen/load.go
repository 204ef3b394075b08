package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// minTick and maxTick bound the scheduler's tick. Each tick sends every
	// request that has come due, so a coarse tick costs precision, never
	// requests; maxTick keeps a slow rate responsive to SIGTERM.
	minTick = time.Millisecond
	maxTick = 100 * time.Millisecond
)

// generator sends requests to every target on one fixed schedule: request
// i of each target is due at start + i/RATE, whatever the servers do (open
// loop). At each tick, every request that has come due is sent if fewer
// than CONCURRENCY requests to its target are in flight, and otherwise
// dropped and counted. Nothing waits for a free worker, so a slow server
// shows up as dropped requests and long durations, never as a quietly
// lower rate (the coordinated omission of closed-loop generators).
type generator struct {
	rate     float64
	duration time.Duration // 0: until ctx ends
	report   time.Duration
	client   *http.Client
	tokens   *tokenSource
	log      *slog.Logger
	now      func() time.Time
	targets  []*target
	inFlight sync.WaitGroup
}

// target is one URL under load: its concurrency slots, its instruments and
// the counters of the current summary interval.
type target struct {
	url   string
	m     targetMetrics
	slots chan struct{} // one token per request in flight

	scheduled, dropped, ok, non2xx, errors, latencyNanos atomic.Int64
	lastError                                            atomic.Pointer[string]
}

func newGenerator(cfg *Config, client *http.Client, tokens *tokenSource, m *loadMetrics, log *slog.Logger) *generator {
	g := &generator{
		rate: cfg.Rate, duration: cfg.Duration, report: cfg.ReportInterval,
		client: client, tokens: tokens, log: log, now: time.Now,
	}
	for _, u := range cfg.Targets {
		g.targets = append(g.targets, &target{url: u, m: m.target(u), slots: make(chan struct{}, cfg.Concurrency)})
	}
	return g
}

// period is the time between two requests to one target.
func (g *generator) period() time.Duration {
	return time.Duration(float64(time.Second) / g.rate)
}

// due is when request i (of every target) is scheduled, computed from the
// start each time so that rounding never accumulates.
func (g *generator) due(start time.Time, i int64) time.Time {
	return start.Add(time.Duration(float64(i) * float64(time.Second) / g.rate))
}

// run waits for the first token, sends load until ctx ends or DURATION has
// passed, waits for the requests in flight and returns. It logs a summary
// every REPORT_INTERVAL and a last one at the end.
func (g *generator) run(ctx context.Context) {
	select {
	case <-g.tokens.ready():
	case <-ctx.Done():
		return
	}
	start := g.now()
	var end time.Time // zero: no end but ctx
	if g.duration > 0 {
		end = start.Add(g.duration)
	}
	g.log.Info("sending load", "targets", len(g.targets), "rate_per_target", g.rate,
		"concurrency_per_target", cap(g.targets[0].slots), "duration", g.duration.String())

	tick := time.NewTicker(min(max(g.period(), minTick), maxTick))
	defer tick.Stop()
	report := time.NewTicker(g.report)
	defer report.Stop()
	var next int64 // the next request's index
	sendDue := func(now time.Time) {
		for {
			at := g.due(start, next)
			if at.After(now) || (!end.IsZero() && !at.Before(end)) {
				return
			}
			for _, t := range g.targets {
				g.schedule(t)
			}
			next++
		}
	}
	last := start
	sendDue(start)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case now := <-tick.C:
			sendDue(now)
			done = !end.IsZero() && !now.Before(end)
		case now := <-report.C:
			g.summary("load", now.Sub(last))
			last = now
		}
	}
	g.inFlight.Wait()
	g.summary("load finished", g.now().Sub(last))
}

// schedule sends one request to t now, or drops it when t has no free
// concurrency slot.
func (g *generator) schedule(t *target) {
	t.m.scheduled.Inc()
	t.scheduled.Add(1)
	select {
	case t.slots <- struct{}{}:
	default:
		t.m.dropped.Inc()
		t.dropped.Add(1)
		return
	}
	tok := g.tokens.current()
	g.inFlight.Add(1)
	t.m.inFlight.Inc()
	go func() {
		defer func() {
			t.m.inFlight.Dec()
			<-t.slots
			g.inFlight.Done()
		}()
		g.send(t, tok)
	}()
}

// send does one GET with the bearer token and records how it ended. The
// body is read to the end so the connection goes back to the pool.
func (g *generator) send(t *target, tok *token) {
	began := time.Now()
	code, err := g.do(t.url, tok)
	d := time.Since(began)
	t.m.answered(code, d)
	t.latencyNanos.Add(int64(d))
	switch {
	case err != nil:
		t.errors.Add(1)
		msg := err.Error()
		t.lastError.Store(&msg)
	case code >= 200 && code < 300:
		t.ok.Add(1)
	default:
		t.non2xx.Add(1)
	}
}

// do returns the status code, or 0 and the error when no whole response
// arrived.
func (g *generator) do(url string, tok *token) (int, error) {
	// Requests are not tied to the run's context: on SIGTERM, those in
	// flight finish (within REQUEST_TIMEOUT) and are counted.
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.value)
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, nil
}

// summary logs one line: per target, what happened since the last summary.
func (g *generator) summary(msg string, interval time.Duration) {
	attrs := []any{"interval", interval.Round(time.Millisecond).String()}
	if tok := g.tokens.current(); tok != nil {
		attrs = append(attrs, "token_expires_in", tok.exp.Sub(g.now()).Round(time.Second).String())
	}
	secs := interval.Seconds()
	for i, t := range g.targets {
		scheduled, dropped := t.scheduled.Swap(0), t.dropped.Swap(0)
		ok, non2xx, errs := t.ok.Swap(0), t.non2xx.Swap(0), t.errors.Swap(0)
		nanos := t.latencyNanos.Swap(0)
		group := []any{"url", t.url, "scheduled", scheduled, "ok", ok, "non_2xx", non2xx, "errors", errs, "dropped", dropped}
		if secs > 0 {
			group = append(group, "ok_per_second", round1(float64(ok)/secs))
		}
		if n := ok + non2xx + errs; n > 0 {
			group = append(group, "mean_ms", round1(float64(nanos)/float64(n)/1e6))
		}
		if errs > 0 {
			if last := t.lastError.Load(); last != nil {
				group = append(group, "last_error", *last)
			}
		}
		attrs = append(attrs, slog.Group(fmt.Sprintf("t%d", i+1), group...))
	}
	g.log.Info(msg, attrs...)
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
