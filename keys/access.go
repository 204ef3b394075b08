package keys

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/atomicfile"
	"github.com/jwt-sidecar/jwt-sidecar/internal/capool"
)

// Access is how a remote source reaches an issuer that is not on the
// public web PKI or wants a credential for its keys: the Kubernetes API
// server is both (its cluster CA, and a service-account token that may
// read /openid/v1/jwks).
type Access struct {
	// CAFile holds PEM CA certificates that verify the issuer's discovery
	// and JWKS endpoints instead of the system roots. It is re-read when it
	// changes (looked at, at most, once per fetch).
	CAFile string
	// BearerTokenFile holds a token sent as Authorization: Bearer with the
	// source's discovery and JWKS fetches (never to a key relay). It is read
	// again at every fetch, because the tokens it holds rotate (a Kubernetes
	// projected service-account token, about hourly), and never logged.
	BearerTokenFile string
}

// maxTokenBytes bounds a bearer token file; a service-account token is
// about a kilobyte.
const maxTokenBytes = 64 << 10

// caCheckInterval is how often, at most, a CA file's metadata is looked at.
// Fetches are minutes apart, so in practice: at every fetch.
const caCheckInterval = time.Second

// WithAccess sets how a remote or OIDC source reaches its issuer. It reads
// both files once, so that a missing or unusable file is a configuration
// error at start rather than a failing refresh loop. Call it before the
// source is used; the files' paths become part of its definition, so a
// reload that changes either starts a new source.
func (s *Source) WithAccess(a Access) (*Source, error) {
	if !s.remote() {
		return nil, errors.New("a CA file and a bearer token file apply only to a JWKS URL or an OIDC issuer")
	}
	if a == (Access{}) {
		return s, nil
	}
	if a.BearerTokenFile != "" {
		if _, err := readBearerToken(a.BearerTokenFile); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBearerTokenFile, err)
		}
		if err := tokenSafeURL(s.url); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBearerTokenFile, err)
		}
	}
	if a.CAFile != "" {
		pool, err := capool.New(a.CAFile, caCheckInterval, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
		}
		base := http.DefaultTransport.(*http.Transport).Clone()
		s.relayC = s.client // a key relay is another server, under the system roots
		s.client = &http.Client{Transport: capool.NewTransport(pool, base)}
	}
	s.access = a
	s.def += "\x00ca=" + a.CAFile + "\x00token=" + a.BearerTokenFile
	return s, nil
}

// Sentinels of WithAccess, so that a caller can say which setting is wrong.
var (
	ErrCAFile          = errors.New("CA file")
	ErrBearerTokenFile = errors.New("bearer token file")
)

// readBearerToken reads the token file: one token, surrounding whitespace
// (a trailing newline) dropped. Its errors name the file, never the token.
func readBearerToken(file string) (string, error) {
	raw, err := atomicfile.ReadLimited(file, maxTokenBytes)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(raw))
	switch {
	case tok == "":
		return "", fmt.Errorf("%s is empty", file)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("%s holds more than one token", file)
	}
	return tok, nil
}

// tokenSafeURL refuses to send a bearer token over plain HTTP to anything
// but loopback: the token would cross the network readable by anyone on
// the path.
func tokenSafeURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme == "https" {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("a bearer token is sent only over https (or to loopback), not to %s", redact(raw))
}

// authorize adds the source's bearer token to a fetch from the issuer,
// read from its file now.
func (s *Source) authorize(req *http.Request) error {
	if s.access.BearerTokenFile == "" {
		return nil
	}
	if err := tokenSafeURL(req.URL.String()); err != nil {
		return err
	}
	tok, err := readBearerToken(s.access.BearerTokenFile)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Failure causes: the `cause` of a failed refresh's log line, so that the
// usual misconfigurations of a private issuer say what to fix.
const (
	CauseUntrusted    = "untrusted_certificate" // the CA file is missing or wrong
	CauseUnauthorized = "unauthorized"          // 401/403: the token is missing, wrong, or lacks the right
)

// failureCause names a well-known cause of a failed fetch, or "".
func failureCause(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &hostname), errors.As(err, &verify):
		return CauseUntrusted
	case errors.Is(err, errUnauthorized):
		return CauseUnauthorized
	}
	return ""
}

// errUnauthorized marks a 401 or 403 answer to a fetch.
var errUnauthorized = errors.New("the issuer refused the credentials")

// causeAttr is the cause log attribute of a failed refresh, when known.
func causeAttr(err error) []any {
	if c := failureCause(err); c != "" {
		return []any{"cause", c}
	}
	return nil
}
