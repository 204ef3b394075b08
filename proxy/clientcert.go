package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// Client certificate headers: set from the TLS listener's verified client
// certificate (TLS_CLIENT_CA_FILE), and deleted from every request before,
// in any spelling, so that no client can forge them.
const (
	// ClientCertSubjectHeader is the certificate's subject, RFC 2253 style.
	ClientCertSubjectHeader = "X-Client-Cert-Subject"
	// ClientCertSHA256Header is the base64url SHA-256 of the certificate's
	// DER: the RFC 8705 x5t#S256 confirmation a bound token carries.
	ClientCertSHA256Header = "X-Client-Cert-Sha256"
)

var clientCertHeaders = []string{ClientCertSubjectHeader, ClientCertSHA256Header}

// clientCert scrubs the client certificate headers and, when the TLS
// handshake verified a client certificate, sets them from it.
func clientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scrubHeaders(r.Header, clientCertHeaders)
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			leaf := r.TLS.VerifiedChains[0][0]
			sum := sha256.Sum256(leaf.Raw)
			r.Header[ClientCertSubjectHeader] = []string{headerSafe(leaf.Subject.String())}
			r.Header[ClientCertSHA256Header] = []string{base64.RawURLEncoding.EncodeToString(sum[:])}
		}
		next.ServeHTTP(w, r)
	})
}

// headerSafe replaces what may not appear in a header value (controls, and
// bytes beyond ASCII, which upstreams read differently) with '?'.
func headerSafe(s string) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return '?'
		}
		return c
	}, s)
}
