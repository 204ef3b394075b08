package tlstest

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Issuer is an OpenID issuer shaped like the Kubernetes API server's
// service-account issuer: HTTPS under a private CA, discovery at
// /.well-known/openid-configuration whose issuer is its own https URL, the
// key set at /openid/v1/jwks, and both answered only to a request that
// carries the bearer token it currently accepts (401 otherwise, as the API
// server answers a caller it does not know).
type Issuer struct {
	*httptest.Server
	// URL is https://127.0.0.1:PORT: the issuer, and the iss of its tokens.

	cert  atomic.Pointer[tls.Certificate]
	token atomic.Pointer[string]
	jwks  atomic.Pointer[[]byte]

	mu     sync.Mutex
	seen   []string // the bearer tokens presented, in order
	denied atomic.Int64
	served atomic.Int64
}

// JWKSPath is where the issuer serves its keys, as the API server does.
const JWKSPath = "/openid/v1/jwks"

// NewIssuer starts an issuer with a server certificate of ca, accepting the
// bearer token tok and serving the JWK Set jwks.
func NewIssuer(t testing.TB, ca *CA, tok string, jwks []byte) *Issuer {
	t.Helper()
	is := &Issuer{}
	is.SetCertificate(ca.Server(t, "kubernetes"))
	is.SetToken(tok)
	is.SetJWKS(jwks)
	is.Server = httptest.NewUnstartedServer(http.HandlerFunc(is.serve))
	// httptest fills in Certificates, which win over GetCertificate for a
	// client that sends no server name (an IP address): a config per
	// handshake serves the current certificate instead.
	is.TLS = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*is.cert.Load()}}, nil
		},
	}
	is.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	is.StartTLS()
	t.Cleanup(is.Close)
	return is
}

// SetCertificate replaces the server certificate for new connections.
func (is *Issuer) SetCertificate(p Pair) { c := p.TLS; is.cert.Store(&c) }

// SetToken replaces the one bearer token the issuer accepts.
func (is *Issuer) SetToken(tok string) { is.token.Store(&tok) }

// SetJWKS replaces the key set.
func (is *Issuer) SetJWKS(raw []byte) { is.jwks.Store(&raw) }

// Seen lists the bearer tokens presented so far ("" for none).
func (is *Issuer) Seen() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]string(nil), is.seen...)
}

// Denied counts the requests answered 401.
func (is *Issuer) Denied() int64 { return is.denied.Load() }

// Served counts the key sets served.
func (is *Issuer) Served() int64 { return is.served.Load() }

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, hasBearer := "", len(auth) > 7 && auth[:7] == "Bearer "
	if hasBearer {
		tok = auth[7:]
	}
	is.mu.Lock()
	is.seen = append(is.seen, tok)
	is.mu.Unlock()
	if !hasBearer || tok != *is.token.Load() {
		is.denied.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="kubernetes"`)
		http.Error(w, `{"kind":"Status","status":"Failure","reason":"Unauthorized","code":401}`, http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.URL,
			"jwks_uri":                              is.URL + JWKSPath,
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case JWKSPath:
		is.served.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*is.jwks.Load())
	default:
		http.NotFound(w, r)
	}
}
