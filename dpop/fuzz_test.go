package dpop

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseProof: the DPoP header is attacker-controlled. Parsing never
// panics and every refusal is a classified *Error; what verifies has a key
// thumbprint and the required claims.
func FuzzParseProof(f *testing.F) {
	f.Add("e30.e30.")
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwiY3J2IjoiUC0yNTYiLCJ4IjoiIiwieSI6IiJ9fQ.e30.AA")
	c, err := New(Options{Now: func() time.Time { return t0 }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := ParseProof(raw, DefaultAlgorithms)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if p.JKT == "" || p.JTI == "" || p.HTM == "" || p.HTU == "" || p.IAT.IsZero() {
			t.Fatalf("accepted an incomplete proof: %+v", p)
		}
		_, _ = c.CheckToken(Request{Method: p.HTM, URI: p.HTU, Proofs: []string{raw}, AccessToken: "t"}, "DPoP", p.JKT)
	})
}
