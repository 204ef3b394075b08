package config

import (
	"net/url"
	"strings"
	"testing"
)

func TestUpstreamProblem(t *testing.T) {
	for raw, want := range map[string]string{
		"http://127.0.0.1:3000":     "",
		"https://app.internal:8443": "",
		"h2c://127.0.0.1:50051":     "",
		"unix:///run/app.sock":      "",
		"unix://run/app.sock":       "three slashes",
		"unix:///":                  "three slashes",
		"h2c://127.0.0.1:50051/svc": "host:port only",
		"http:///nohost":            "absolute URL",
		"ftp://x":                   "want http://",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		got := UpstreamProblem(u)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", raw, got, want)
		}
	}
}

func TestUpstreamTLSFilesNeedHTTPS(t *testing.T) {
	var problems []string
	bad := func(name, format string, _ ...any) { problems = append(problems, name) }
	c := &Config{UpstreamURL: &url.URL{Scheme: "h2c", Host: "127.0.0.1:1"}, UpstreamCAFile: "ca.pem", UpstreamClientCertFile: "c.pem"}
	c.checkProtocols(bad)
	joined := strings.Join(problems, " ")
	for _, want := range []string{"UPSTREAM_CA_FILE", "UPSTREAM_CLIENT_CERT_FILE"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems %v lack %s", problems, want)
		}
	}
}
