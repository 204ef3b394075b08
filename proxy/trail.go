package proxy

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// traceFor is the policy trace to record for r: a new one when the logger
// writes debug lines (LOG_LEVEL=debug), nil otherwise, so that a sidecar at
// info level pays one Enabled call per request and allocates nothing.
func (p *Proxy) traceFor(ctx context.Context) *policy.Trace {
	if !p.log.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	return &policy.Trace{}
}

// logTrail writes the decision trail of one request at debug level: every
// rule tried and why it did not match, then every provider asked and its
// answer. Never the token: a refusal shows its reason and error only.
func (p *Proxy) logTrail(ctx context.Context, r *http.Request, tr *policy.Trace, d *policy.Decision) {
	rules := make([]string, 0, len(tr.Rules))
	for _, rt := range tr.Rules {
		rules = append(rules, rt.Rule.Name+": "+rt.Mismatch.String())
	}
	providers := make([]string, 0, len(tr.Providers))
	for _, pt := range tr.Providers {
		answer := "verified"
		if pt.Err != nil {
			answer = "error"
			if e, ok := pt.Err.(*verifier.Error); ok {
				answer = string(e.Reason)
			}
		}
		providers = append(providers, pt.Provider+": "+answer)
	}
	decision := "forward"
	switch {
	case d.Err != nil:
		decision = "refuse"
	case d.Public:
		decision = "forward public"
	case d.Anonymous:
		decision = "forward anonymous"
	}
	rule := ""
	if d.Rule != nil {
		rule = d.Rule.Name
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "decision trail",
		slog.String("request_id", requestIDOf(r)),
		slog.String("method", r.Method),
		slog.String("path", config.CleanPath(r.URL.Path)),
		slog.String("rule", rule),
		slog.Any("rules_tried", rules),
		slog.Any("providers_asked", providers),
		slog.String("decision", decision),
	)
}
