package proxy

import (
	"net/http"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// TestEveryReasonHasAResponse: a reason added to the taxonomy gets a
// status, an RFC 6750 error code, its own description and its outcome,
// with no edit here. The metric series half of this is in
// cmd/jwt-sidecar (TestEveryReasonHasASeries).
func TestEveryReasonHasAResponse(t *testing.T) {
	wantStatus := map[verifier.Outcome]int{
		verifier.Unauthenticated:    http.StatusUnauthorized,
		verifier.Forbidden:          http.StatusForbidden,
		verifier.OutcomeUnavailable: http.StatusServiceUnavailable,
		verifier.BadRequest:         http.StatusBadRequest,
	}
	seen := map[string]verifier.Reason{}
	for _, r := range verifier.Reasons {
		ref := newRefusal(r, dpop.DefaultAlgorithms)
		if ref.outcome != r.Outcome() {
			t.Errorf("%s: outcome %s, the taxonomy says %s", r, ref.outcome, r.Outcome())
		}
		if want, ok := wantStatus[ref.outcome]; !ok || ref.status != want {
			t.Errorf("%s: status %d for outcome %s", r, ref.status, ref.outcome)
		}
		if ref.code == "" || len(ref.body) == 0 {
			t.Errorf("%s: no error code or body", r)
		}
		desc := r.Description()
		if desc == verifier.Reason("never-a-reason").Description() {
			t.Errorf("%s: no description of its own (the fallback %q)", r, desc)
		}
		if other, dup := seen[desc]; dup {
			t.Errorf("%s and %s share the description %q", r, other, desc)
		}
		seen[desc] = r
		if ref.status == http.StatusUnauthorized && len(ref.challenge) == 0 {
			t.Errorf("%s: a 401 without WWW-Authenticate (RFC 6750 §3)", r)
		}
	}
}
