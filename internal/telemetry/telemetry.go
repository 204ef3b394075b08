// Package telemetry joins the taxonomy to the metrics: the label sets whose
// series the sidecar exports from the first scrape, taken from the
// packages that own them (the verifier's reasons and outcomes, the
// proxy's upstream failures). metrics/ imports nothing of the project, so
// this is where the two meet; main and the chart's alert tests use it.
package telemetry

import (
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Labels are the sidecar's metric label sets.
func Labels() metrics.Labels {
	l := metrics.Labels{
		Passed:               []string{string(verifier.Allowed), string(verifier.Public)},
		Refusals:             map[string]string{},
		Modes:                []string{verifier.ModeJWT, verifier.ModeIntrospection},
		UpstreamErrors:       proxy.UpstreamErrorKinds,
		SkewClaims:           verifier.SkewClaims,
		IntrospectionResults: verifier.IntrospectionResults,
	}
	for _, r := range verifier.Reasons {
		l.Refusals[string(r)] = string(r.Outcome())
	}
	return l
}
