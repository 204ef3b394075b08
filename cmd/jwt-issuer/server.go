package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

const (
	// shutdownTimeout bounds the drain of in-flight requests on SIGTERM.
	shutdownTimeout = 10 * time.Second
	// jwksMaxAge is how long clients may cache the JWKS. It is short so
	// that a verifier sees a new next key well before it signs anything.
	jwksMaxAge = time.Minute
)

// server is the development token service. Every endpoint is registered in
// routes.
type server struct {
	cfg     config
	keys    *keyRing
	clients map[string][sha256.Size]byte // client id to the SHA-256 of its secret
	log     *slog.Logger
	now     func() time.Time // the clock; tests replace it

	registry *prometheus.Registry // the issuer's own, served at /metrics
	metrics  *metrics

	// ownParser and ownKeyfunc verify this issuer's tokens; both are built
	// once because /introspect runs them on every request.
	ownParser  *jwt.Parser
	ownKeyfunc jwt.Keyfunc
	revoked    *expirySet[revocationKey] // until each token's exp
	// revokedSubjects are /revoke-subject's entries; dpop checks the proofs
	// of token requests (revocations.go, dpop.go).
	revokedSubjects *subjectRevocations
	dpop            *dpop.Checker

	// clientKeys are CLIENT_KEYS: the keys each client signs jwt-bearer
	// assertions with; the parser, keyfunc and used jtis serve that grant.
	clientKeys      map[string][]clientKey
	assertionParser *jwt.Parser
	clientKeyfunc   jwt.Keyfunc
	usedAssertions  *expirySet[assertionKey] // until each assertion's exp + leeway

	login *loginState // codes and refresh tokens of browser logins
}

// newServer builds a server from a validated config: it loads
// SIGNING_KEY_FILE or generates the first key.
func newServer(cfg config, log *slog.Logger) (*server, error) {
	clients, err := parseClients(cfg.Clients)
	if err != nil {
		return nil, fmt.Errorf("CLIENTS: %w", err)
	}
	clientKeys, err := loadClientKeys(cfg.ClientKeys)
	if err != nil {
		return nil, fmt.Errorf("CLIENT_KEYS: %w", err)
	}
	users, err := loadUsers(cfg.Users, cfg.UsersFile)
	if err != nil {
		return nil, err
	}
	first, err := firstKey(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := newKeyRing(first, cfg.TokenTTL, cfg.KeyRotationInterval > 0)
	if err != nil {
		return nil, err
	}
	proofs, err := dpop.New(dpop.Options{})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	s := &server{
		cfg:      cfg,
		keys:     keys,
		clients:  hashSecrets(clients),
		log:      log,
		now:      time.Now,
		registry: reg,
		metrics:  newMetrics(reg, cli.Version(version)),
		revoked:  newExpirySet[revocationKey](),

		revokedSubjects: newSubjectRevocations(),
		dpop:            proofs,

		clientKeys:     clientKeys,
		usedAssertions: newExpirySet[assertionKey](),
		login:          newLoginState(users),
	}
	s.ownParser = s.newOwnParser()
	s.ownKeyfunc = s.ownKey
	s.assertionParser = s.newAssertionParser()
	s.clientKeyfunc = s.clientKey
	return s, nil
}

// firstKey loads SIGNING_KEY_FILE, or generates a key for SIGNING_ALG.
func firstKey(cfg config) (*signingKey, error) {
	if cfg.SigningKeyFile == "" {
		s, err := generateKey(cfg.SigningAlg)
		if err != nil {
			return nil, err
		}
		return newSigningKey(s, cfg.SigningAlg)
	}
	s, err := readPrivateKey(cfg.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %w", err)
	}
	k, err := newSigningKey(s, cfg.SigningAlg)
	if err != nil {
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %w (set SIGNING_ALG to fit the key)", err)
	}
	return k, nil
}

// routes is the one place where endpoints are registered. Each is
// instrumented whole, its 405s included, under its endpoint label.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range []struct {
		method, path, endpoint string
		h                      http.Handler
	}{
		{http.MethodGet, "/.well-known/openid-configuration", endpointDiscovery, http.HandlerFunc(s.handleDiscovery)},
		{http.MethodGet, "/.well-known/jwks.json", endpointJWKS, http.HandlerFunc(s.handleJWKS)},
		{http.MethodPost, "/token", endpointToken, http.HandlerFunc(s.handleToken)},
		{http.MethodPost, "/introspect", endpointIntrospect, http.HandlerFunc(s.handleIntrospect)},
		{http.MethodPost, "/revoke", endpointRevoke, http.HandlerFunc(s.handleRevoke)},
		{http.MethodPost, "/revoke-subject", endpointRevokeSubject, http.HandlerFunc(s.handleRevokeSubject)},
		{http.MethodGet, "/revocations", endpointRevocations, http.HandlerFunc(s.handleRevocations)},
		{http.MethodGet, "/healthz", endpointHealthz, http.HandlerFunc(s.handleHealthz)},
		{http.MethodGet, "/metrics", endpointMetrics, promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
			ErrorLog: cli.ScrapeErrorLog(s.log),
		})},
	} {
		mux.Handle(rt.path, s.metrics.instrument(rt.endpoint, allowMethod(rt.method, rt.h)))
	}
	s.loginRoutes(mux)
	return mux
}

// allowMethod answers 405 with an Allow header to any method but method (and
// HEAD for GET).
func allowMethod(method string, h http.Handler) http.Handler {
	allow := method
	if method == http.MethodGet {
		allow = "GET, HEAD"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
			w.Header().Set("Allow", allow)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// endpoint returns ISSUER_URL joined with path.
func (s *server) endpoint(path string) string {
	return strings.TrimSuffix(s.cfg.IssuerURL, "/") + path
}

// discovery is the OpenID Connect Discovery 1.0 §3 document, reduced to
// what this issuer has, with the RFC 8414 §2 introspection and revocation
// members.
type discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	TokenEndpoint                    string   `json:"token_endpoint"`
	IntrospectionEndpoint            string   `json:"introspection_endpoint"`
	RevocationEndpoint               string   `json:"revocation_endpoint"`
	GrantTypesSupported              []string `json:"grant_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethods         []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionAuthMethods         []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationAuthMethods            []string `json:"revocation_endpoint_auth_methods_supported"`
	loginDiscovery
}

func (s *server) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	authMethods := []string{"client_secret_basic", "client_secret_post"}
	// OpenID Connect Discovery §4.3: issuer is exactly ISSUER_URL.
	writeJSON(w, http.StatusOK, discovery{
		Issuer:                           s.cfg.IssuerURL,
		JWKSURI:                          s.endpoint("/.well-known/jwks.json"),
		TokenEndpoint:                    s.endpoint("/token"),
		IntrospectionEndpoint:            s.endpoint("/introspect"),
		RevocationEndpoint:               s.endpoint("/revoke"),
		GrantTypesSupported:              s.grantTypes(),
		IDTokenSigningAlgValuesSupported: []string{s.cfg.SigningAlg},
		TokenEndpointAuthMethods:         authMethods,
		IntrospectionAuthMethods:         authMethods,
		RevocationAuthMethods:            authMethods,
		loginDiscovery:                   s.loginDiscovery(),
	})
}

// grantTypes are the grant_type values /token accepts: jwt-bearer only
// when CLIENT_KEYS names a client that could use it.
func (s *server) grantTypes() []string {
	grants := []string{grantClientCredentials}
	if len(s.clientKeys) > 0 {
		grants = append(grants, grantJWTBearer)
	}
	return append(grants, grantAuthorizationCode, grantRefreshToken)
}

// handleJWKS publishes the signing keys with a strong ETag (the hash of the
// body, which changes only with the keys), so a sidecar's or a key relay's
// conditional refresh gets 304 and no body (RFC 9110 §13.1.2), as from a
// well-behaved IdP.
func (s *server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	set, err := s.keys.jwks(s.now())
	if err != nil {
		s.log.Error("build jwks", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetIndent("", "  ")
	if err := enc.Encode(set); err != nil {
		s.log.Error("encode jwks", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body.Bytes())
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(s.jwksMaxAge().Seconds())))
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body.Bytes())
}

// jwksMaxAge keeps the cache lifetime below half a rotation interval, so a
// cached set always holds the key that signs next.
func (s *server) jwksMaxAge() time.Duration {
	age := jwksMaxAge
	if iv := s.cfg.KeyRotationInterval; iv > 0 && iv/2 < age {
		age = max(iv/2, time.Second)
	}
	return age
}

func (s *server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// run serves on ln and rotates keys until ctx ends, then drains in-flight
// requests for at most shutdownTimeout. It returns nil after a clean
// shutdown.
func (s *server) run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
	if iv := s.cfg.KeyRotationInterval; iv > 0 {
		g.Go(func() error { return s.rotateEvery(ctx, iv) })
	}
	s.log.Info("jwt-issuer listening (development only, never a production identity provider)",
		"addr", ln.Addr().String(), "issuer", s.cfg.IssuerURL, "alg", s.cfg.SigningAlg,
		"kid", s.keys.signer().kid, "rotation", s.cfg.KeyRotationInterval.String(),
		"grant_types", s.grantTypes())
	return g.Wait()
}

// rotateEvery rotates the signing key at every tick until ctx ends; it
// returns nil then, or the first rotation error.
func (s *server) rotateEvery(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			k, err := s.keys.rotate(s.now())
			if err != nil {
				return err
			}
			s.log.Info("rotated signing key", "kid", k.kid)
		}
	}
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}
