package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/dpop"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/revocation"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// fetchResults and logoutResults are revocation's label values.
var (
	fetchResults  = []string{revocation.FetchOK, revocation.FetchNotModified, revocation.FetchFromDisk, revocation.FetchError, revocation.FetchInvalid}
	logoutResults = []string{revocation.LogoutOK, revocation.LogoutInvalid, revocation.LogoutReplayed, revocation.LogoutUnsupported}
)

// stateOf is what stateless verification is given beyond the keys, shared by
// every provider and kept across reloads: the revocation list (one store,
// so one poll whatever the providers) and the DPoP checker (one replay
// cache, so a proof spent at one provider is spent at all).
type stateOf struct {
	store  *revocation.Store // nil without a list or back-channel logout
	sender *verifier.SenderConstraint
}

// revocations is the store as the verifier's interface: a nil interface,
// not a typed nil, when there is no store, so the request path skips it.
func (s stateOf) revocations() verifier.Revocations {
	if s.store == nil {
		return nil
	}
	return s.store
}

// newState builds the store and the DPoP checker from the configuration.
// It reads the nonce secret but fetches nothing.
func newState(cfg *config.Config, rt *runtime, reg prometheus.Registerer) (stateOf, error) {
	var st stateOf
	if cfg.AuthMode == "jwt" && (cfg.RevocationListURL != "" || cfg.RevocationFile != "" || cfg.BackchannelLogoutPath != "") {
		rec := metrics.NewRevocation(reg, metrics.RevocationLabels{FetchResults: fetchResults, LogoutResults: logoutResults}, cfg.RevocationStaleAfter)
		store, err := revocation.New(revocation.Options{
			URL:             cfg.RevocationListURL,
			File:            cfg.RevocationFile,
			RefreshInterval: cfg.RevocationRefreshInterval,
			StaleAfter:      cfg.RevocationStaleAfter,
			CacheDir:        cfg.JWKSCacheDir,
			MaxBytes:        cfg.RevocationMaxBytes,
			FetchTimeout:    cfg.JWKSFetchTimeout,
			Recorder:        rec,
			Log:             rt.log,
		})
		if err != nil {
			return st, fmt.Errorf("REVOCATION_LIST_URL: %w", err)
		}
		st.store = store
	}
	if cfg.AuthMode != "jwt" {
		return st, nil
	}
	var nonces *dpop.NonceSource
	if cfg.DPoPNonce {
		var secret []byte
		if cfg.DPoPNonceSecretFile != "" {
			b, err := os.ReadFile(cfg.DPoPNonceSecretFile)
			if err != nil {
				return st, fmt.Errorf("DPOP_NONCE_SECRET_FILE: %w", err)
			}
			secret = []byte(strings.TrimSuffix(string(b), "\n"))
		}
		var err error
		if nonces, err = dpop.NewNonceSource(secret, dpop.DefaultNonceLifetime); err != nil {
			return st, fmt.Errorf("DPOP_NONCE_SECRET_FILE: %w", err)
		}
	}
	checker, err := dpop.New(dpop.Options{
		Algorithms:      cfg.DPoPAlgorithms,
		MaxAge:          cfg.DPoPProofMaxAge,
		Leeway:          cfg.ClockSkew,
		ReplayCacheSize: cfg.DPoPReplayCacheSize,
		Nonces:          nonces,
	})
	if err != nil {
		return st, fmt.Errorf("DPOP_ALGORITHMS: %w", err)
	}
	metrics.DPoPReplay(reg, checker.Replay().Len, checker.Replay().Evictions)
	st.sender = &verifier.SenderConstraint{
		Checker: checker,
		Target:  dpop.Target{ExternalURL: cfg.DPoPExternalURL, TrustForwarded: cfg.DPoPTrustForwarded},
		Nonces:  nonces,
	}
	return st, nil
}

// run keeps the revocation list fresh until ctx ends.
func (s stateOf) run(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	return s.store.Run(ctx)
}

// ready is the list's part of /readyz: every source loaded once (a cached
// list counts). A stale list stays ready (docs/revocation.md).
func (s stateOf) ready() error {
	if s.store == nil || s.store.Ready() {
		return nil
	}
	var waiting []string
	for _, st := range s.store.Status() {
		if !st.Loaded {
			w := st.Name
			if st.LastError != "" {
				w += " (" + st.LastError + ")"
			}
			waiting = append(waiting, w)
		}
	}
	return errors.New("revocation list not loaded yet: " + strings.Join(waiting, ", "))
}

// handler mounts back-channel logout on the proxy listener at
// BACKCHANNEL_LOGOUT_PATH; every other path goes to the proxy.
func (a *app) listenerHandler() (http.Handler, error) {
	h := a.proxy.Handler()
	path := a.cfg.BackchannelLogoutPath
	if path == "" {
		return h, nil
	}
	logout, err := revocation.NewLogoutHandler(a.rt.state.store, revocation.LogoutOptions{
		Verify:           a.rt.verifyLogout,
		MaxTokenLifetime: a.cfg.BackchannelTokenLifetime,
	})
	if err != nil {
		return nil, fmt.Errorf("BACKCHANNEL_LOGOUT_PATH: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			logout.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}

// verifyLogout verifies a back-channel logout token with the keys of the
// policy in force: the first provider whose verifier accepts it (its
// issuers pick its keys) gives the claims. Logout tokens need no scope, so
// each provider keeps a verifier for them without REQUIRED_SCOPES.
func (rt *runtime) verifyLogout(ctx context.Context, token string) (map[string]any, error) {
	var errs []error
	for _, bp := range rt.current.Load().order {
		if bp.logout == nil {
			continue
		}
		c, err := bp.logout.VerifyToken(ctx, token)
		if err == nil {
			return c.Values(), nil
		}
		errs = append(errs, fmt.Errorf("provider %s: %w", bp.name, err))
	}
	if len(errs) == 0 {
		return nil, errors.New("no provider verifies tokens locally")
	}
	return nil, errors.Join(errs...)
}
