package comparison

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// modeTitle is a mode's column heading.
var modeTitle = map[string]string{
	ModeJWT:           "jwt (stateless)",
	ModeIntrospection: "introspection (RFC 7662)",
}

// WriteTable prints the results as a markdown table with what they were
// measured on and how.
func (r *Results) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "## Stateless JWT verification vs token introspection, token service %s\n\n", r.RTT.label())
	row := func(label string, cell func(m ModeStats) string) {
		cells := make([]string, len(r.Modes))
		for i, m := range r.Modes {
			cells[i] = cell(m)
		}
		fmt.Fprintf(w, "| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	heads := make([]string, len(r.Modes))
	aligns := make([]string, len(r.Modes))
	for i, m := range r.Modes {
		heads[i], aligns[i] = modeTitle[m.Mode], "---:"
	}
	fmt.Fprintf(w, "| | %s |\n|---|%s|\n", strings.Join(heads, " | "), strings.Join(aligns, "|"))

	row("served (2xx) per second, steady", func(m ModeStats) string { return fmt.Sprintf("%.1f", m.Steady.ServedPerSecond) })
	row("verification p50, steady ¹", func(m ModeStats) string { return formatSeconds(m.Steady.VerifyP50) })
	row("verification p99, steady ¹", func(m ModeStats) string { return formatSeconds(m.Steady.VerifyP99) })
	row("end-to-end p50, client side, steady ¹", func(m ModeStats) string { return formatSeconds(m.Steady.E2EP50) })
	row("end-to-end p99, client side, steady ¹", func(m ModeStats) string { return formatSeconds(m.Steady.E2EP99) })
	row("token-service calls per request, steady ²", func(m ModeStats) string {
		p := m.Steady
		if p.CallsPerRequest == nil || p.TokenServiceCalls == nil {
			return "n/a"
		}
		return fmt.Sprintf("%s (%.0f in %.0f requests)", formatRatio(*p.CallsPerRequest), *p.TokenServiceCalls, p.SidecarRequests)
	})
	row("token-service requests per second, steady ²", func(m ModeStats) string { return formatRate(m.Steady.CallsPerSecond) })
	row("**served (2xx) while the issuer was down**", func(m ModeStats) string { return "**" + formatShare(m.Outage) + "**" })
	if r.RevocationInterval > 0 {
		row("**revoked token refused after** ⁴", func(m ModeStats) string { return "**" + formatRevocation(m.Revocation) + "**" })
	}
	row("answers while the issuer was down", func(m ModeStats) string { return formatCodes(m.Outage) })
	row("token-service calls attempted while it was down ³", func(m ModeStats) string {
		if m.Outage.CallsAttempted == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.0f", *m.Outage.CallsAttempted)
	})
	row("/readyz while the issuer was down", func(m ModeStats) string { return fmt.Sprint(m.Ready.Outage) })
	row("served (2xx) after the issuer came back", func(m ModeStats) string { return formatShare(m.Recovery) })

	fmt.Fprintf(w, "\n¹ Bucket-interpolated: estimated from the increase of each Prometheus histogram's buckets over the phase, with linear interpolation inside a bucket as histogram_quantile does (buckets about 1.78× wide), not exact percentiles. Verification is the sidecar's own jwt_sidecar_verification_duration_seconds; end to end is jwt-loadgen's jwt_loadgen_request_duration_seconds.\n")
	fmt.Fprintf(w, "² The issuer's own jwt_issuer_requests_total: endpoints jwks, discovery and revocations for jwt mode, introspect for introspection mode, over the sidecar's jwt_sidecar_requests_total.\n")
	fmt.Fprintf(w, "³ The sidecar's own count: key fetches (jwt_sidecar_key_refreshes_total) or introspection requests (jwt_sidecar_introspection_requests_total).\n")
	if r.RevocationInterval > 0 {
		fmt.Fprintf(w, "⁴ After the recovery a probe token is revoked at the issuer (RFC 7009 /revoke); each sidecar is asked every %s from the moment /revoke answered until it refuses (401). The jwt sidecar polls the issuer's /revocations every %g s (REVOCATION_REFRESH_INTERVAL); introspection asks on every request.\n",
			probeEvery, r.RevocationInterval)
	}

	fmt.Fprintf(w, "\nphases:")
	for i, p := range r.Phases {
		sep := ","
		if i == 0 {
			sep = ""
		}
		counted := ""
		if !p.Counted {
			counted = " (not counted)"
		}
		fmt.Fprintf(w, "%s %s %.1f s%s", sep, p.Name, p.Seconds, counted)
	}
	fmt.Fprintln(w)
	caches := "off on both sides (TOKEN_CACHE_SIZE=0, INTROSPECTION_CACHE_TTL=0): every request is verified in full"
	if r.Caches {
		caches = "on (jwt: TOKEN_CACHE_SIZE=10000 verified tokens; introspection: INTROSPECTION_CACHE_TTL=60s)"
	}
	fmt.Fprintf(w, "load:   jwt-loadgen, open loop, %g requests/s to each sidecar, at most %d in flight each, one client_credentials token (RS256)\n", r.Rate, r.Concurrency)
	fmt.Fprintf(w, "caches: %s\n", caches)
	fmt.Fprintf(w, "token service: %s\n", r.RTT.describe())
	for _, m := range r.Modes {
		for _, ph := range []struct {
			name string
			p    PhaseStats
		}{{"steady", m.Steady}, {"outage", m.Outage}, {"recovery", m.Recovery}} {
			if ph.p.Dropped > 0 {
				fmt.Fprintf(w, "NOTE: %s, %s: jwt-loadgen dropped %.0f of %.0f scheduled requests (all %d in flight): the target fell behind the schedule.\n",
					m.Mode, ph.name, ph.p.Dropped, ph.p.Scheduled, r.Concurrency)
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "NOTE: %s\n", n)
	}
	mc := r.Machine
	fmt.Fprintf(w, "machine: %s, %d cores, %s/%s, %s", mc.CPU, mc.Cores, mc.OS, mc.Arch, mc.GoVersion)
	if mc.SidecarGo != "" {
		fmt.Fprintf(w, " (jwt-sidecar built with %s)", mc.SidecarGo)
	}
	fmt.Fprintln(w)
	if r.Command != "" {
		fmt.Fprintf(w, "command: %s\n", r.Command)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "\n**UNEXPECTED: %s**\n", f)
	}
}

// formatSeconds picks µs, ms or s.
func formatSeconds(s *float64) string {
	switch {
	case s == nil:
		return "n/a"
	case *s < 1e-3:
		return fmt.Sprintf("%.1f µs", *s*1e6)
	case *s < 1:
		return fmt.Sprintf("%.2f ms", *s*1e3)
	}
	return fmt.Sprintf("%.2f s", *s)
}

// formatRate is "200.1/s".
func formatRate(f *float64) string {
	if f == nil {
		return "n/a"
	}
	if *f < 10 {
		return fmt.Sprintf("%.2f/s", *f)
	}
	return fmt.Sprintf("%.0f/s", *f)
}

// formatRevocation is "1.23 s (3 probes)" or "not within 23.0 s".
func formatRevocation(r *Revocation) string {
	switch {
	case r == nil:
		return "n/a"
	case r.RefusedAfter == nil:
		return fmt.Sprintf("not within %.1f s", r.WaitedSeconds)
	}
	return formatSeconds(r.RefusedAfter)
}

// label is "loopback" or "2 ms away".
func (t RTT) label() string {
	if t.Seconds == 0 {
		return "on loopback"
	}
	return formatDuration(t.Seconds) + " away"
}

// describe says how the sidecars reached the token service.
func (t RTT) describe() string {
	if t.Seconds == 0 {
		return "on loopback, straight to the issuer (no relay)"
	}
	measured := "n/a"
	if t.Measured != nil {
		measured = formatSeconds(t.Measured)
	}
	return fmt.Sprintf("through a relay adding a %s round trip to every request and response (measured before the run: +%s per exchange); the load generator gets its token straight from the issuer", formatDuration(t.Seconds), measured)
}

// formatDuration is a round trip as set: "0.5 ms", "2 ms", "50 ms", "1.5 s".
func formatDuration(s float64) string {
	if s >= 1 {
		return strconv.FormatFloat(s, 'g', -1, 64) + " s"
	}
	return strconv.FormatFloat(s*1e3, 'g', 4, 64) + " ms"
}

// formatRatio keeps small ratios readable: 0, 0.0004, 1.00.
func formatRatio(f float64) string {
	switch {
	case f == 0:
		return "0"
	case f < 0.01:
		return fmt.Sprintf("%.4f", f)
	}
	return fmt.Sprintf("%.2f", f)
}

// formatShare is "99.5% (3980 of 4000)".
func formatShare(p PhaseStats) string {
	if p.ServedShare == nil {
		return "n/a (nothing scheduled)"
	}
	return fmt.Sprintf("%.1f%% (%.0f of %.0f)", 100**p.ServedShare, p.Served, p.Settled)
}
