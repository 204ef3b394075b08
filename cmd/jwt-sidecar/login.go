package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/login"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// loginLabels are browser login's metric label values, from the login
// package.
func loginLabels() metrics.LoginLabels {
	l := metrics.LoginLabels{Events: login.Events, RefreshOutcomes: login.RefreshOutcomes}
	for _, r := range login.Reasons {
		l.Failures = append(l.Failures, string(r))
	}
	return l
}

// loginRecorder is login.Recorder over the metrics, which import nothing
// of the project.
type loginRecorder struct{ m *metrics.Logins }

func (r loginRecorder) LoginStarted()                   { r.m.Event(login.EventStarted) }
func (r loginRecorder) LoginCompleted()                 { r.m.Event(login.EventCompleted) }
func (r loginRecorder) LoginFailed(reason login.Reason) { r.m.Failure(string(reason)) }
func (r loginRecorder) SessionRefreshed(outcome string) { r.m.Refresh(outcome) }

// checkLogins refuses logins of several providers that would share a path
// or a cookie: a callback must reach its own login, and a cookie its own
// session.
func checkLogins(spec *policy.Spec) error {
	var errs []error
	owner := map[string]string{}
	claim := func(ps *policy.ProviderSpec, what, v string) {
		key := what + " " + v
		if other, ok := owner[key]; ok {
			errs = append(errs, fmt.Errorf("providers %s and %s: both logins use the %s %s", other, ps.Name, what, v))
			return
		}
		owner[key] = ps.Name
	}
	for i := range spec.Providers {
		ps := &spec.Providers[i]
		if ps.Login == nil {
			continue
		}
		claim(ps, "path", ps.Login.CallbackPath)
		claim(ps, "path", ps.Login.SignOutPath)
		claim(ps, "cookie", ps.Login.CookieName)
	}
	return errors.Join(errs...)
}

// newLogin builds ps's browser login. Its ID tokens pass a verifier over
// the provider's own keys, with the provider's checks (algorithms, skew,
// exp, required scopes) and the client as the audience: the same verifier
// and keys as bearer tokens, and the same metrics.
func (rt *runtime) newLogin(spec *policy.Spec, ps *policy.ProviderSpec, ks *keys.Keys) (*login.Login, error) {
	ls := ps.Login
	if ps.OIDCIssuerURL == "" || ks == nil {
		return nil, errors.New("browser login: needs the provider's OIDC issuer (discovery) and its keys")
	}
	v, err := verifier.New(verifier.Options{
		Keys:           ks,
		Audiences:      []string{ls.ClientID},
		Algorithms:     ps.Algorithms,
		ClockSkew:      ps.ClockSkew,
		RequireExp:     true, // OpenID Connect Core §2: an ID token has exp
		RequiredScopes: ps.RequiredScopes,
		MaxTokenSize:   rt.cfg.MaxTokenSize,
		Recorder:       rt.m,
	})
	if err != nil {
		return nil, fmt.Errorf("browser login: %w", err)
	}
	hc, err := issuerClient(ps.CAFile)
	if err != nil {
		return nil, fmt.Errorf("browser login: %w", err)
	}
	var rec login.Recorder
	if rt.lm != nil {
		rec = loginRecorder{rt.lm}
	}
	l, err := login.New(login.Options{
		Issuer:               ps.OIDCIssuerURL,
		ClientID:             ls.ClientID,
		ClientSecretFile:     ls.ClientSecretFile,
		CookieKeyFile:        ls.CookieKeyFile,
		Scopes:               ls.Scopes,
		CallbackPath:         ls.CallbackPath,
		SignOutPath:          ls.SignOutPath,
		CookieName:           ls.CookieName,
		CookieDomain:         ls.CookieDomain,
		Refresh:              ls.Refresh,
		RefreshAhead:         ls.RefreshAhead,
		MaxAge:               ls.MaxAge,
		AllowedRedirectHosts: ls.AllowedRedirectHosts,
		PlainHTTP:            ls.PlainHTTP,
		LoopbackListener:     config.LoopbackAddr(rt.cfg.ListenAddr),
		KeepClaims:           keptClaims(spec, ps),
		KeepIDToken:          ls.KeepIDToken,
		VerifyIDToken:        v.VerifyToken,
		Recorder:             rec,
		HTTPClient:           hc,
		Log:                  rt.log.With("provider", ps.Name),
	})
	if err != nil {
		return nil, fmt.Errorf("browser login: %w", err)
	}
	return l, nil
}

// keptClaims are the claims a session of ps keeps: those its claim headers
// forward, and those the rules naming it require, with scope and scp when
// a rule or the provider requires scopes. Nothing else is sealed into the
// cookie.
func keptClaims(spec *policy.Spec, ps *policy.ProviderSpec) []string {
	var out []string
	add := func(c string) {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	for _, ch := range ps.ClaimsToHeaders {
		add(ch.Claim)
	}
	scopes := len(ps.RequiredScopes) > 0
	reqs := []policy.Requirement{spec.Default}
	for _, r := range spec.Rules {
		reqs = append(reqs, r.Require)
	}
	for _, req := range reqs {
		if !slices.Contains(req.Providers, ps.Name) {
			continue
		}
		for _, c := range req.Claims {
			add(c.Claim)
		}
		scopes = scopes || len(req.Scopes) > 0
	}
	if scopes {
		add("scope")
		add("scp")
	}
	return out
}

// effectiveLogin is a provider's browser login as check-config shows it:
// the settings in force and the claims its sessions keep, no secrets.
type effectiveLogin struct {
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	CookieKeyFile    string   `yaml:"cookie_key_file"`
	Scopes           []string `yaml:"scopes,flow"`
	CallbackPath     string   `yaml:"callback_path"`
	SignOutPath      string   `yaml:"sign_out_path"`
	CookieName       string   `yaml:"cookie_name"`
	CookieDomain     string   `yaml:"cookie_domain,omitempty"`
	Refresh          bool     `yaml:"refresh"`
	RefreshAhead     string   `yaml:"refresh_ahead"`
	MaxAge           string   `yaml:"max_age"`
	AllowedHosts     []string `yaml:"allowed_redirect_hosts,flow,omitempty"`
	KeepIDToken      bool     `yaml:"keep_id_token"`
	PlainHTTP        bool     `yaml:"plain_http"`
	KeptClaims       []string `yaml:"kept_claims,flow"`
}

func loginView(spec *policy.Spec, p *policy.ProviderSpec) *effectiveLogin {
	ls := p.Login
	return &effectiveLogin{
		ClientID: ls.ClientID, ClientSecretFile: ls.ClientSecretFile + " (secret not shown)", CookieKeyFile: ls.CookieKeyFile + " (keys not shown)",
		Scopes: ls.Scopes, CallbackPath: ls.CallbackPath, SignOutPath: ls.SignOutPath,
		CookieName: ls.CookieName, CookieDomain: ls.CookieDomain, Refresh: ls.Refresh,
		RefreshAhead: ls.RefreshAhead.String(), MaxAge: ls.MaxAge.String(), AllowedHosts: ls.AllowedRedirectHosts,
		KeepIDToken: ls.KeepIDToken, PlainHTTP: ls.PlainHTTP,
		KeptClaims: append([]string{"iss", "sub", "exp"}, keptClaims(spec, p)...),
	}
}
