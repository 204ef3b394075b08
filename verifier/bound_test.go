package verifier_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// TestConfirmationNeverDowngrades: a token whose cnf names a key or
// certificate is never accepted as a plain bearer token: without a DPoP
// checker, over plain HTTP, with an unusable cnf, or with the DPoP scheme
// but no proof. A token without cnf passes as Bearer and is refused with
// the DPoP scheme.
func TestConfirmationNeverDowngrades(t *testing.T) {
	s := newSigner(t, "ES256", "k1")
	src, err := keys.NewStaticSource("s", []string{issA}, []keys.StaticKey{{KID: "k1", Key: s.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	ks := mustKeys(t, keys.KeyOptions{}, nil, src)
	load(t, ks)
	v, err := verifier.New(verifier.Options{Keys: ks, Audiences: []string{aud}, ClockSkew: 30 * time.Second, Now: func() time.Time { return base }})
	if err != nil {
		t.Fatal(err)
	}
	withCnf := func(cnf any) string {
		c := claims(issA)
		if cnf != nil {
			c["cnf"] = cnf
		}
		return s.Sign(t, c)
	}
	tests := []struct {
		name   string
		auth   string
		want   verifier.Reason
		passes bool
	}{
		{name: "no cnf as Bearer", auth: "Bearer " + withCnf(nil), passes: true},
		{name: "no cnf with the DPoP scheme", auth: "DPoP " + withCnf(nil), want: verifier.DPoPMismatch},
		{name: "jkt without a DPoP checker", auth: "DPoP " + withCnf(map[string]any{"jkt": "abc"}), want: verifier.DPoPMismatch},
		{name: "jkt as Bearer without a DPoP checker", auth: "Bearer " + withCnf(map[string]any{"jkt": "abc"}), want: verifier.DPoPMismatch},
		{name: "x5t#S256 over plain HTTP", auth: "Bearer " + withCnf(map[string]any{"x5t#S256": "abc"}), want: verifier.MTLSMissing},
		{name: "cnf naming nothing known", auth: "Bearer " + withCnf(map[string]any{"jwk": map[string]any{}}), want: verifier.DPoPMismatch},
		{name: "cnf not an object", auth: "Bearer " + withCnf("abc"), want: verifier.DPoPMismatch},
		{name: "DPoP scheme without a token", auth: "DPoP", want: verifier.InvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r.Header.Set("Authorization", tt.auth)
			_, err := v.Verify(t.Context(), r)
			if tt.passes {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *verifier.Error
			if !errors.As(err, &e) || e.Reason != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}
