package main

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// TestEveryReasonHasASeries: every reason of the taxonomy, and every
// outcome a request can pass with, has its jwt_sidecar_requests_total
// series from the first scrape, so a dashboard or alert on a new reason
// sees zeros, not gaps. (The response half is proxy's
// TestEveryReasonHasAResponse.)
func TestEveryReasonHasASeries(t *testing.T) {
	_, a, err := quietApp(minimal())
	if err != nil {
		t.Fatal(err)
	}
	families, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[[2]string]bool{}
	for _, f := range families {
		if f.GetName() != "jwt_sidecar_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			have[[2]string{label(m, "outcome"), label(m, "reason")}] = true
		}
	}
	for _, r := range verifier.Reasons {
		if !have[[2]string{string(r.Outcome()), string(r)}] {
			t.Errorf("no series for reason %s (outcome %s)", r, r.Outcome())
		}
	}
	for _, o := range []verifier.Outcome{verifier.Allowed, verifier.Public} {
		if !have[[2]string{string(o), ""}] {
			t.Errorf("no series for outcome %s", o)
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
