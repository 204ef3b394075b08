package comparison

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Metric names read from the processes (docs/contract.md).
const (
	loadRequests      = "jwt_loadgen_requests_total"
	loadDuration      = "jwt_loadgen_request_duration_seconds"
	loadScheduled     = "jwt_loadgen_scheduled_total"
	loadDropped       = "jwt_loadgen_dropped_total"
	sidecarRequests   = "jwt_sidecar_requests_total"
	sidecarVerify     = "jwt_sidecar_verification_duration_seconds"
	sidecarRefreshes  = "jwt_sidecar_key_refreshes_total"
	sidecarIntrospect = "jwt_sidecar_introspection_requests_total"
	issuerRequests    = "jwt_issuer_requests_total"
)

// tokenServiceEndpoints are the issuer endpoints (jwt_issuer_requests_total
// label endpoint) each mode calls: the jwt sidecar fetches keys, the
// introspection sidecar asks about every token. With a revocation list the
// jwt sidecar also polls it.
var tokenServiceEndpoints = map[string][]string{
	ModeJWT:           {"jwks", "discovery", "revocations"},
	ModeIntrospection: {"introspect"},
}

// snapshot is every process's /metrics at one phase boundary.
type snapshot struct {
	label   string
	at      time.Time          // when the load generator was scraped
	scrapes map[string]*scrape // by job
	missing map[string]string  // job: why there is no scrape
	ready   map[string]int     // sidecar job: /readyz status
}

// modeSpec is one mode under comparison: its sidecar's job and the URL the
// load generator sends to.
type modeSpec struct {
	mode, job, target string
}

// Results is everything the table shows, and the JSON of -json.
type Results struct {
	Command     string  `json:"command"`
	Machine     Machine `json:"machine"`
	Rate        float64 `json:"rate_per_sidecar"`
	Concurrency int     `json:"concurrency_per_sidecar"`
	Caches      bool    `json:"caches"`
	RTT         RTT     `json:"token_service_rtt"`
	// RevocationInterval is the jwt sidecar's REVOCATION_REFRESH_INTERVAL
	// in seconds; 0 when the run had no revocation phase.
	RevocationInterval float64     `json:"revocation_refresh_interval_seconds"`
	Phases             []Phase     `json:"phases"`
	Modes              []ModeStats `json:"modes"`
	Notes              []string    `json:"notes,omitempty"`
	Marks              Marks       `json:"marks"`
	Timeline           []Sample    `json:"timeline,omitempty"`
	// Failures are the expectations the run did not meet; a run with any
	// is not a valid comparison.
	Failures []string `json:"failures,omitempty"`
}

// Phase is one stretch of the run.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Counted bool    `json:"counted"`
}

// ModeStats are one mode's numbers per counted phase.
type ModeStats struct {
	Mode     string      `json:"mode"`
	Target   string      `json:"target"`
	Steady   PhaseStats  `json:"steady"`
	Outage   PhaseStats  `json:"outage"`
	Recovery PhaseStats  `json:"recovery"`
	Ready    ReadyStatus `json:"readyz"`
	// Revocation is the revocation phase's result; nil without one.
	Revocation *Revocation `json:"revocation,omitempty"`
}

// ReadyStatus is the sidecar's /readyz status at the end of the steady
// phase and of the outage.
type ReadyStatus struct {
	Steady int `json:"steady"`
	Outage int `json:"outage"`
}

// PhaseStats are one mode's numbers over one phase. Pointers are nil when
// there was nothing to measure (no observations, no issuer metrics).
type PhaseStats struct {
	Seconds   float64            `json:"seconds"`
	Scheduled float64            `json:"scheduled"`
	Dropped   float64            `json:"dropped"`
	Codes     map[string]float64 `json:"codes"` // answers by status code, "error" without one
	Served    float64            `json:"served_2xx"`
	// Settled are the requests whose fate the phase saw: answered (any
	// code, or a transport error) or dropped. Served and Settled count the
	// same requests, those that finished in the phase, whereas Scheduled
	// counts those that started in it: a request due just before a
	// boundary is answered just after it.
	Settled float64 `json:"settled"`
	// ServedPerSecond and ServedShare are 2xx per second, and 2xx over
	// settled requests.
	ServedPerSecond float64  `json:"served_per_second"`
	ServedShare     *float64 `json:"served_share"`
	SidecarRequests float64  `json:"sidecar_requests"` // jwt_sidecar_requests_total, all outcomes
	// Verification and end-to-end quantiles in seconds, interpolated
	// inside histogram buckets as histogram_quantile does.
	VerifyP50 *float64 `json:"verification_p50_seconds"`
	VerifyP99 *float64 `json:"verification_p99_seconds"`
	E2EP50    *float64 `json:"end_to_end_p50_seconds"`
	E2EP99    *float64 `json:"end_to_end_p99_seconds"`
	// TokenServiceCalls are the issuer's own count of the requests this
	// mode makes to it (nil without issuer metrics), and CallsPerRequest
	// that over SidecarRequests.
	TokenServiceCalls *float64 `json:"token_service_calls"`
	CallsPerRequest   *float64 `json:"token_service_calls_per_request"`
	CallsPerSecond    *float64 `json:"token_service_calls_per_second"`
	// CallsAttempted is the sidecar's own count of calls it tried: key
	// fetches in jwt mode, introspection requests otherwise. It is known
	// while the issuer is down.
	CallsAttempted *float64 `json:"token_service_calls_attempted"`
}

func ptr(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

// compute turns the five snapshots into results.
func compute(snaps []snapshot, modes []modeSpec, o Options) *Results {
	r := &Results{Rate: o.Rate, Concurrency: o.Concurrency, Caches: o.Caches,
		RTT: RTT{Seconds: o.RTT.Seconds()}, RevocationInterval: o.RevocationInterval.Seconds()}
	if len(snaps) != snapCount {
		r.Failures = append(r.Failures, fmt.Sprintf("%d snapshots, want %d: the run did not finish", len(snaps), snapCount))
		return r
	}
	secs := func(a, b int) float64 { return snaps[b].at.Sub(snaps[a].at).Seconds() }
	r.Phases = []Phase{
		{Name: "warm-up", Seconds: o.Warmup.Seconds()},
		{Name: "steady", Seconds: secs(snapWarm, snapSteady), Counted: true},
		{Name: "outage (issuer killed)", Seconds: secs(snapSteady, snapOutage), Counted: true},
		{Name: "issuer restart", Seconds: secs(snapOutage, snapRestarted)},
		{Name: "recovery", Seconds: secs(snapRestarted, snapRecovered), Counted: true},
	}
	for _, m := range modes {
		r.Modes = append(r.Modes, ModeStats{
			Mode:     m.mode,
			Target:   m.target,
			Steady:   phaseStats(snaps[snapWarm], snaps[snapSteady], m),
			Outage:   phaseStats(snaps[snapSteady], snaps[snapOutage], m),
			Recovery: phaseStats(snaps[snapRestarted], snaps[snapRecovered], m),
			Ready:    ReadyStatus{Steady: snaps[snapSteady].ready[m.job], Outage: snaps[snapOutage].ready[m.job]},
		})
	}
	for _, i := range []int{snapWarm, snapSteady, snapRestarted, snapRecovered} {
		if why, ok := snaps[i].missing[jobIssuer]; ok {
			r.Notes = append(r.Notes, fmt.Sprintf("no issuer metrics at the %s snapshot (%s): token-service calls per request are n/a", snaps[i].label, why))
			break
		}
	}
	r.Failures = append(r.Failures, r.check()...)
	return r
}

// phaseStats computes one mode's numbers from snapshot a to b.
func phaseStats(a, b snapshot, m modeSpec) PhaseStats {
	la, lb := a.scrapes[jobLoadgen], b.scrapes[jobLoadgen]
	sa, sb := a.scrapes[m.job], b.scrapes[m.job]
	target := eq("target", m.target)
	p := PhaseStats{
		Seconds:         b.at.Sub(a.at).Seconds(),
		Scheduled:       increase(la, lb, loadScheduled, target),
		Dropped:         increase(la, lb, loadDropped, target),
		Served:          increase(la, lb, loadRequests, target, hasPrefix("code", "2")),
		SidecarRequests: increase(sa, sb, sidecarRequests),
		Codes:           map[string]float64{},
	}
	if lb == nil {
		return p
	}
	for _, smp := range lb.samples {
		if smp.name == loadRequests && smp.labels["target"] == m.target {
			if d := la.gain(smp); d > 0 {
				p.Codes[smp.labels["code"]] += d
			}
		}
	}
	if p.Seconds > 0 {
		p.ServedPerSecond = p.Served / p.Seconds
	}
	p.Settled = p.Dropped
	for _, n := range p.Codes {
		p.Settled += n
	}
	if p.Settled > 0 {
		p.ServedShare = ptr(p.Served / p.Settled)
	}
	verify := bucketIncrease(sa, sb, sidecarVerify, eq("mode", m.mode))
	p.VerifyP50, p.VerifyP99 = ptr(Quantile(0.50, verify)), ptr(Quantile(0.99, verify))
	e2e := bucketIncrease(la, lb, loadDuration, target)
	p.E2EP50, p.E2EP99 = ptr(Quantile(0.50, e2e)), ptr(Quantile(0.99, e2e))

	ia, ib := a.scrapes[jobIssuer], b.scrapes[jobIssuer]
	if ia != nil && ib != nil && ib.has(issuerRequests) {
		calls := increase(ia, ib, issuerRequests, oneOf("endpoint", tokenServiceEndpoints[m.mode]...))
		p.TokenServiceCalls = ptr(calls)
		if p.Seconds > 0 {
			p.CallsPerSecond = ptr(calls / p.Seconds)
		}
		if p.SidecarRequests > 0 {
			p.CallsPerRequest = ptr(calls / p.SidecarRequests)
		}
	}
	switch m.mode {
	case ModeJWT:
		// Refreshes the sidecar skipped (cooldown) or read from its disk
		// cache made no call.
		if sb.has(sidecarRefreshes) {
			p.CallsAttempted = ptr(increase(sa, sb, sidecarRefreshes, func(l map[string]string) bool {
				return l["result"] != "cooldown" && l["result"] != "from_disk"
			}))
		}
	case ModeIntrospection:
		if sb.has(sidecarIntrospect) {
			p.CallsAttempted = ptr(increase(sa, sb, sidecarIntrospect))
		}
	}
	return p
}

// Thresholds of the expectations: loose, because the point is which side of
// them each mode lands on, not the decimals; a loaded machine must not fail
// them, a misconfigured run must.
const (
	minServedSteady    = 0.90 // both modes, steady and recovery
	minServedRecovery  = 0.80
	minJWTOutage       = 0.90 // stateless verification keeps serving
	maxIntrospectOut   = 0.10 // introspection without a cache cannot
	maxJWTCallsPerReq  = 0.01
	introspectCallsLow = 0.9 // about one call per request, without a cache
	introspectCallsHi  = 1.1
)

// check lists the expectations the results do not meet.
func (r *Results) check() []string {
	var out []string
	fail := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, m := range r.Modes {
		share := func(p PhaseStats) float64 {
			if p.ServedShare == nil {
				return 0
			}
			return *p.ServedShare
		}
		if s := share(m.Steady); s < minServedSteady {
			fail("%s: only %.1f%% of the steady phase's requests were served (2xx); answers: %s", m.Mode, 100*s, formatCodes(m.Steady))
		}
		if s := share(m.Recovery); s < minServedRecovery {
			fail("%s: only %.1f%% served after the issuer came back; answers: %s", m.Mode, 100*s, formatCodes(m.Recovery))
		}
		switch m.Mode {
		case ModeJWT:
			if s := share(m.Outage); s < minJWTOutage {
				fail("jwt: only %.1f%% served while the issuer was down; stateless verification should not notice; answers: %s", 100*s, formatCodes(m.Outage))
			}
			if c := m.Steady.CallsPerRequest; c != nil && *c > r.maxJWTCalls(m.Steady) {
				fail("jwt: %.3f token-service calls per request in the steady phase; key fetches and list polls should be rare", *c)
			}
		case ModeIntrospection:
			if r.Caches {
				break // a cached answer may serve through the outage
			}
			if s := share(m.Outage); s > maxIntrospectOut {
				fail("introspection: %.1f%% served while the issuer was down, without a cache; the outage did not reach it", 100*s)
			}
			if c := m.Steady.CallsPerRequest; c != nil && (*c < introspectCallsLow || *c > introspectCallsHi) {
				fail("introspection: %.2f token-service calls per request in the steady phase, want about 1 without a cache", *c)
			}
		}
	}
	return out
}

// maxJWTCalls is the most token-service calls per request the jwt sidecar
// may make in phase p: rare key fetches, and one poll of the revocation
// list per interval (and one more for a poll that straddles the start).
func (r *Results) maxJWTCalls(p PhaseStats) float64 {
	limit := maxJWTCallsPerReq
	if r.RevocationInterval > 0 && p.SidecarRequests > 0 {
		limit += (p.Seconds/r.RevocationInterval + 1) / p.SidecarRequests
	}
	return limit
}

// checkRevocation lists the revocation phase's unmet expectations: the
// jwt sidecar refuses a revoked token within its poll interval (and a
// margin for a busy machine), an introspecting sidecar without a cache at
// once.
func (r *Results) checkRevocation() []string {
	var out []string
	for _, m := range r.Modes {
		rv := m.Revocation
		if rv == nil {
			continue
		}
		switch {
		case m.Mode == ModeJWT && rv.RefusedAfter == nil:
			out = append(out, fmt.Sprintf("jwt: a revoked token was still accepted %.1f s after the revocation, with the list polled every %g s", rv.WaitedSeconds, r.RevocationInterval))
		case m.Mode == ModeJWT && *rv.RefusedAfter > r.RevocationInterval+maxRevocationSlack:
			out = append(out, fmt.Sprintf("jwt: a revoked token was refused only %.2f s after the revocation, with the list polled every %g s", *rv.RefusedAfter, r.RevocationInterval))
		case m.Mode == ModeIntrospection && !r.Caches && (rv.RefusedAfter == nil || *rv.RefusedAfter > maxIntrospectRevocation):
			out = append(out, fmt.Sprintf("introspection: a revoked token was not refused at once (%s), without a cache", formatSeconds(rv.RefusedAfter)))
		}
	}
	return out
}

// Revocation thresholds: the jwt sidecar's list is one poll and one fetch
// behind; introspection asks on every request.
const (
	maxRevocationSlack      = 2.0 // seconds past the poll interval
	maxIntrospectRevocation = 1.0 // seconds
)

// formatCodes is "200: 3990, 503: 10" in code order.
func formatCodes(p PhaseStats) string {
	codes := make([]string, 0, len(p.Codes))
	for c := range p.Codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, 0, len(codes)+1)
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s: %.0f", c, p.Codes[c]))
	}
	if p.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("dropped: %.0f", p.Dropped))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
