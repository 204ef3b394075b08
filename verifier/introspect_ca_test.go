package verifier_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// TestIntrospectionCAFile: a token service under a private CA is reached
// only with its CA file (without, every call is unavailable and the token
// service sees nothing); a missing CA file is refused at once.
func TestIntrospectionCAFile(t *testing.T) {
	ca := tlstest.NewCA(t, "token service CA")
	ts := jwttest.NewTLSTokenService(t, ca.Server(t, "tokens").TLS)
	ts.AnyActive = jwttest.ActiveClaims()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	in := func(caFile string) *verifier.Introspector {
		in, err := verifier.NewIntrospector(verifier.IntrospectionOptions{
			URL: ts.URL, ClientID: jwttest.IntrospectionClientID, ClientSecret: jwttest.IntrospectionClientSecret, CAFile: caFile,
			Now: func() time.Time { return jwttest.Now },
		})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	req := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://app.test/", nil)
		r.Header.Set("Authorization", "Bearer opaque-token")
		return r
	}
	if _, err := in("").Verify(t.Context(), req()); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("without the CA file: %v, want an unknown authority", err)
	}
	if n := ts.Calls.Load(); n != 0 {
		t.Errorf("the token service saw %d calls over an unverified connection", n)
	}
	if _, err := in(caFile).Verify(t.Context(), req()); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	if _, err := verifier.NewIntrospector(verifier.IntrospectionOptions{
		URL: ts.URL, ClientID: "c", ClientSecret: "s", CAFile: filepath.Join(t.TempDir(), "absent"),
	}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
