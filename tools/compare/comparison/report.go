package comparison

import (
	"fmt"
	"io"
	"strings"
)

// Report is a run of `make compare` at one or more token-service round
// trips: the JSON of -json, the summary table and the picture.
type Report struct {
	Command string     `json:"command"`
	Machine Machine    `json:"machine"`
	Runs    []*Results `json:"runs"` // one per round trip, in the order given
}

// Failures are every run's, each naming its round trip.
func (rp *Report) Failures() []string {
	var out []string
	for _, r := range rp.Runs {
		for _, f := range r.Failures {
			out = append(out, fmt.Sprintf("token service %s: %s", r.RTT.label(), f))
		}
	}
	return out
}

// WriteSummary prints the runs side by side: one row per round trip and
// mode, the columns the README quotes.
func (rp *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "## Stateless JWT verification vs token introspection, by distance to the token service\n\n")
	revocation := false
	for _, r := range rp.Runs {
		revocation = revocation || r.RevocationInterval > 0
	}
	heads := []string{"token service", "mode", "verification p50", "verification p99", "end-to-end p99",
		"token-service calls per request", "token-service requests/s", "**served while it was down**"}
	if revocation {
		heads = append(heads, "**revoked token refused after**")
	}
	fmt.Fprintf(w, "| %s |\n|---|---|%s\n", strings.Join(heads, " | "), strings.Repeat("---:|", len(heads)-2))
	for _, r := range rp.Runs {
		where := r.RTT.label()
		if r.RTT.Measured != nil {
			where += fmt.Sprintf(" (measured +%s)", formatSeconds(r.RTT.Measured))
		}
		for _, m := range r.Modes {
			st := m.Steady
			calls := "n/a"
			if st.CallsPerRequest != nil {
				calls = formatRatio(*st.CallsPerRequest)
			}
			share := "n/a"
			if m.Outage.ServedShare != nil {
				share = fmt.Sprintf("%.1f%%", 100**m.Outage.ServedShare)
			}
			cells := []string{where, m.Mode, formatSeconds(st.VerifyP50), formatSeconds(st.VerifyP99), formatSeconds(st.E2EP99),
				calls, formatRate(st.CallsPerSecond), "**" + share + "**"}
			if revocation {
				cells = append(cells, "**"+formatRevocation(m.Revocation)+"**")
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
	}
	if len(rp.Runs) > 0 {
		r := rp.Runs[0]
		fmt.Fprintln(w)
		var phases []string
		for _, p := range r.Phases {
			if p.Counted {
				phases = append(phases, fmt.Sprintf("%s %.0f s", p.Name, p.Seconds))
			}
		}
		fmt.Fprintf(w, "Each round trip is a run of its own: %s; %g requests/s to each sidecar, caches %s.", strings.Join(phases, ", "), r.Rate, map[bool]string{false: "off", true: "on"}[r.Caches])
		if revocation {
			fmt.Fprintf(w, " Revocation: the jwt sidecar polls /revocations every %g s.", r.RevocationInterval)
		}
		fmt.Fprintln(w)
	}
	mc := rp.Machine
	fmt.Fprintf(w, "machine: %s, %d cores, %s/%s, %s\n", mc.CPU, mc.Cores, mc.OS, mc.Arch, mc.GoVersion)
	if rp.Command != "" {
		fmt.Fprintf(w, "command: %s\n", rp.Command)
	}
	for _, f := range rp.Failures() {
		fmt.Fprintf(w, "\n**UNEXPECTED: %s**\n", f)
	}
}
