package login

import (
	"net/http"
	"strings"
	"testing"
)

func TestOptionsRefused(t *testing.T) {
	p := newTestIdP(t)
	tests := []struct {
		name string
		edit func(*Options)
	}{
		{"no issuer", func(o *Options) { o.Issuer = "" }},
		{"no client", func(o *Options) { o.ClientID = "" }},
		{"no verifier", func(o *Options) { o.VerifyIDToken = nil }},
		{"relative callback", func(o *Options) { o.CallbackPath = "callback" }},
		{"same paths", func(o *Options) { o.SignOutPath = DefaultCallbackPath }},
		{"bad cookie name", func(o *Options) { o.CookieName = "a b" }},
		{"plain HTTP off loopback", func(o *Options) { o.PlainHTTP = true }},
		{"__Host- with domain", func(o *Options) { o.CookieName = "__Host-s"; o.CookieDomain = "example.com" }},
		{"bad redirect host", func(o *Options) { o.AllowedRedirectHosts = []string{"evil.com/x"} }},
		{"short key", func(o *Options) { o.CookieKeyFile = writeFile(t, "k", "short\n") }},
		{"no key", func(o *Options) { o.CookieKeyFile = writeFile(t, "k", "# none\n") }},
		{"empty secret", func(o *Options) { o.ClientSecretFile = writeFile(t, "s", "\n") }},
		{"missing secret file", func(o *Options) { o.ClientSecretFile = "/nonexistent" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, p)
			tt.edit(&o)
			if _, err := New(o); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestDiscoveryIssuerMismatch: a discovery document that names another
// issuer than the configured one (here only a trailing slash apart) is
// refused, so no browser is sent anywhere.
func TestDiscoveryIssuerMismatch(t *testing.T) {
	r := newRig(t, func(o *Options) { o.Issuer += "/" })
	if err := r.login.Discover(t.Context()); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Errorf("Discover = %v, want an issuer mismatch", err)
	}
	resp := r.navigate(t, r.srv.URL+"/app")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Location") != "" {
		t.Errorf("status = %d, Location %q; want 503 without a redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r.rec.failures(Unavailable) != 1 || r.up.count() != 0 {
		t.Errorf("failures %v, upstream %d", r.rec.failed, r.up.count())
	}
}
