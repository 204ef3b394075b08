package comparison

import (
	"context"
	"strings"
	"time"
)

// Sample is every mode's numbers over one sampling interval: the points of
// the picture (WriteSVG).
type Sample struct {
	// T is the end of the interval, in seconds since the start of the
	// steady phase (negative in the warm-up).
	T     float64 `json:"t"`
	Modes []Point `json:"modes"`
}

// Point is one mode over one interval; nil where there was nothing to
// measure.
type Point struct {
	Mode            string   `json:"mode"`
	ServedPerSecond float64  `json:"served_per_second"`
	ServedShare     *float64 `json:"served_share"`
	VerifyP50       *float64 `json:"verification_p50_seconds"`
	VerifyP99       *float64 `json:"verification_p99_seconds"`
	E2EP50          *float64 `json:"end_to_end_p50_seconds"`
	E2EP99          *float64 `json:"end_to_end_p99_seconds"`
}

// Marks are the moments of the run, in seconds since the start of the
// steady phase.
type Marks struct {
	OutageStart float64  `json:"outage_start"`
	OutageEnd   float64  `json:"outage_end"` // the issuer started again
	Restarted   float64  `json:"restarted"`  // and ready
	Recovered   float64  `json:"recovered"`
	Revoked     *float64 `json:"revoked,omitempty"` // the issuer answered /revoke
	End         float64  `json:"end"`
}

// sampler scrapes the load generator and the sidecars every interval (not
// the issuer: it is down for part of the run, and its counts are in the
// phase snapshots) and keeps each interval's numbers.
type sampler struct {
	s       *stack
	every   time.Duration
	samples []Sample
	done    chan struct{}
}

// sample starts a sampler; stop ends it and returns its samples, T
// relative to zero.
func (s *stack) sample(ctx context.Context, every time.Duration) *sampler {
	sp := &sampler{s: s, every: every, done: make(chan struct{})}
	if every <= 0 {
		close(sp.done)
		return sp
	}
	go sp.run(ctx)
	return sp
}

func (sp *sampler) run(ctx context.Context) {
	defer close(sp.done)
	prev, err := sp.scrape(ctx)
	tick := time.NewTicker(sp.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cur, cerr := sp.scrape(ctx)
		if cerr != nil {
			// A process the run needs is gone or too slow to answer: the
			// run itself notices; here the interval is left out.
			err = cerr
			continue
		}
		if err == nil {
			sp.samples = append(sp.samples, point(prev, cur, sp.s.modes()))
		}
		prev, err = cur, nil
	}
}

// point computes one sample from two scrapes, T as the time of b.
func point(a, b snapshot, modes []modeSpec) Sample {
	smp := Sample{T: float64(b.at.UnixNano()) / 1e9}
	for _, m := range modes {
		p := phaseStats(a, b, m)
		smp.Modes = append(smp.Modes, Point{Mode: m.mode, ServedPerSecond: p.ServedPerSecond, ServedShare: p.ServedShare,
			VerifyP50: p.VerifyP50, VerifyP99: p.VerifyP99, E2EP50: p.E2EP50, E2EP99: p.E2EP99})
	}
	return smp
}

// stop ends the sampler and returns its samples with T in seconds since
// zero.
func (sp *sampler) stop(cancel context.CancelFunc, zero time.Time) []Sample {
	cancel()
	<-sp.done
	z := float64(zero.UnixNano()) / 1e9
	for i := range sp.samples {
		sp.samples[i].T -= z
	}
	return sp.samples
}

// scrape is a snapshot of the load generator and the sidecars, kept in
// memory only.
func (sp *sampler) scrape(ctx context.Context) (snapshot, error) {
	snap := snapshot{scrapes: map[string]*scrape{}}
	jobs := []string{jobLoadgen}
	for _, m := range sp.s.o.Modes {
		jobs = append(jobs, sidecarJob(m))
	}
	for i, job := range jobs {
		if i == 0 {
			snap.at = time.Now()
		}
		raw, err := fetchMetrics(ctx, sp.s.urls[job]+"/metrics")
		if err != nil {
			return snap, err
		}
		if snap.scrapes[job], err = parseScrape(strings.NewReader(string(raw))); err != nil {
			return snap, err
		}
	}
	return snap, nil
}
