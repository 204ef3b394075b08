package main

import (
	"net/http"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// decisionListeners is the forward-auth decision listener (DECISION_ADDR),
// or none. It answers with the proxy's own decision, under the policy in
// force (reloads included), and speaks HTTP/1.1 and h2c like the proxy
// listener; it is never TLS (the proxies that ask sit beside it).
func (a *app) decisionListeners() []cli.Listener {
	if a.cfg.DecisionAddr == "" {
		return nil
	}
	return []cli.Listener{{
		Var:  "DECISION_ADDR",
		Addr: a.cfg.DecisionAddr,
		Server: &http.Server{
			Handler: a.proxy.DecisionHandler(proxy.DecisionOptions{
				TrustedProxies: a.cfg.DecisionTrustedProxies,
				PathPrefix:     a.cfg.DecisionPathPrefix,
				Recorder:       metrics.NewDecisions(a.reg, decisionOutcomes()),
			}),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			Protocols:         inboundProtocols(),
		},
	}}
}

// decisionOutcomes are the outcomes of jwt_sidecar_decisions_total: the
// taxonomy's, and the sidecar's own fault.
func decisionOutcomes() []string {
	out := make([]string, 0, len(verifier.Outcomes)+1)
	for _, o := range verifier.Outcomes {
		out = append(out, string(o))
	}
	return append(out, proxy.OutcomeInternalError)
}

// decisionNote is check-config's line about the listeners: whether the
// decision listener runs, beside the proxy or alone.
func decisionNote(cfg *config.Config) string {
	switch {
	case cfg.DecisionAddr == "":
		return ""
	case cfg.UpstreamURL == nil:
		return "A forward-auth decision service only: DECISION_ADDR answers, and the proxy listener (LISTEN_ADDR) is not started."
	}
	return "Forward-auth: DECISION_ADDR answers decisions beside the proxy listener."
}
