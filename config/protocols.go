package config

import "net/url"

// checkProtocols is Validate's part for the upstream's scheme and TLS
// files: UPSTREAM_URL is http://, https://, h2c://host:port (HTTP/2
// cleartext) or unix:///path.sock, and the upstream TLS files only go with
// https, the client pair together.
func (c *Config) checkProtocols(bad func(name, format string, args ...any)) {
	u := c.UpstreamURL
	if u != nil {
		if msg := UpstreamProblem(u); msg != "" {
			bad("UPSTREAM_URL", "%s", msg)
		}
	}
	https := u != nil && u.Scheme == "https"
	for name, file := range map[string]string{
		"UPSTREAM_CA_FILE": c.UpstreamCAFile, "UPSTREAM_CLIENT_CERT_FILE": c.UpstreamClientCertFile,
		"UPSTREAM_CLIENT_KEY_FILE": c.UpstreamClientKeyFile,
	} {
		if file != "" && u != nil && !https {
			bad(name, "applies only to an https:// UPSTREAM_URL")
		}
	}
	if (c.UpstreamClientCertFile == "") != (c.UpstreamClientKeyFile == "") {
		bad("UPSTREAM_CLIENT_CERT_FILE", "set it together with UPSTREAM_CLIENT_KEY_FILE, or neither")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("TLS_CERT_FILE", "set it together with TLS_KEY_FILE, or neither")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		bad("TLS_CLIENT_CA_FILE", "needs TLS_CERT_FILE and TLS_KEY_FILE: client certificates come only over TLS")
	}
}

// UpstreamProblem says what is wrong with an upstream URL, or "" when
// nothing is.
func UpstreamProblem(u *url.URL) string {
	switch u.Scheme {
	case "http", "https", "h2c":
		if u.Host == "" {
			return "want an absolute URL such as http://127.0.0.1:3000"
		}
		if u.Scheme == "h2c" && u.Path != "" && u.Path != "/" {
			return "an h2c:// upstream is host:port only; gRPC paths come from the request"
		}
	case "unix":
		if u.Host != "" || len(u.Path) < 2 || u.Path[0] != '/' {
			return "want unix:///absolute/path.sock (three slashes)"
		}
	default:
		return "want http://, https://, h2c://host:port or unix:///path.sock"
	}
	return ""
}
