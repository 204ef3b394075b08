package main

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// grant_type values of browser login.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
)

// Grant labels of jwt_issuer_tokens_issued_total for browser login.
const (
	grantLabelAuthorizationCode = "authorization_code"
	grantLabelRefreshToken      = "refresh_token"
)

// loginDiscovery are the discovery members of browser login (OpenID
// Connect Discovery 1.0 §3, RP-Initiated Logout 1.0 §2.1, RFC 8414 §2).
type loginDiscovery struct {
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	EndSessionEndpoint            string   `json:"end_session_endpoint"`
	ResponseTypesSupported        []string `json:"response_types_supported"`
	SubjectTypesSupported         []string `json:"subject_types_supported"`
	ScopesSupported               []string `json:"scopes_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseISS      bool     `json:"authorization_response_iss_parameter_supported"`
}

func (s *server) loginDiscovery() loginDiscovery {
	return loginDiscovery{
		AuthorizationEndpoint:         s.endpoint("/authorize"),
		EndSessionEndpoint:            s.endpoint("/end_session"),
		ResponseTypesSupported:        []string{"code"},
		SubjectTypesSupported:         []string{"public"},
		ScopesSupported:               []string{"openid", "profile", "email"},
		CodeChallengeMethodsSupported: []string{"S256"},
		AuthorizationResponseISS:      true,
	}
}

// loginTokenResponse is the token answer of browser login: RFC 6749 §5.1
// with the OpenID Connect id_token.
type loginTokenResponse struct {
	tokenResponse
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token"`
}

// loginGrant answers the authorization_code and refresh_token grants of an
// authenticated client; it reports false for any other grant.
func (s *server) loginGrant(w http.ResponseWriter, form url.Values, clientID string) bool {
	switch form.Get("grant_type") {
	case grantAuthorizationCode:
		s.codeGrant(w, form, clientID)
	case grantRefreshToken:
		s.refreshGrant(w, form, clientID)
	default:
		return false
	}
	return true
}

// codeGrant exchanges a code once (RFC 6749 §4.1.3), after the PKCE check
// (RFC 7636 §4.6). A second use fails and revokes what the first issued.
func (s *server) codeGrant(w http.ResponseWriter, form url.Values, clientID string) {
	now := s.now()
	s.login.mu.Lock()
	c, ok := s.login.codes[form.Get("code")]
	switch {
	case !ok || now.After(c.expires):
		s.login.mu.Unlock()
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "unknown or expired code")
		return
	case c.used:
		for _, rt := range c.refresh {
			delete(s.login.refresh, rt)
		}
		c.refresh = nil
		s.login.mu.Unlock()
		s.log.Warn("authorization code used twice; its refresh tokens are revoked", "client_id", clientID, "username", c.user)
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "the code was used already")
		return
	}
	c.used = true // whatever follows: a code is tried once
	s.login.mu.Unlock()
	switch {
	case c.req.ClientID != clientID:
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "the code was issued to another client")
	case c.req.RedirectURI != form.Get("redirect_uri"):
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "redirect_uri differs from the authorization request's")
	case !verifyPKCE(form.Get("code_verifier"), c.req.Challenge):
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "code_verifier does not match the code_challenge")
	default:
		g := &refreshGrant{clientID: clientID, user: c.user, scope: c.req.Scope, authTime: c.authTime, code: form.Get("code")}
		s.issueUserTokens(w, g, c.req.Nonce, grantLabelAuthorizationCode)
	}
}

// refreshGrant renews tokens with a refresh token (RFC 6749 §6), which is
// rotated: the old one stops working (RFC 9700 §4.14.2).
func (s *server) refreshGrant(w http.ResponseWriter, form url.Values, clientID string) {
	now := s.now()
	rt := form.Get("refresh_token")
	s.login.mu.Lock()
	g, ok := s.login.refresh[rt]
	if ok && g.clientID == clientID && !now.After(g.expires) {
		delete(s.login.refresh, rt)
	}
	s.login.mu.Unlock()
	switch {
	case !ok || now.After(g.expires):
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "unknown, used or expired refresh token")
	case g.clientID != clientID:
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "the refresh token was issued to another client")
	default:
		s.issueUserTokens(w, g, "", grantLabelRefreshToken)
	}
}

// issueUserTokens answers with an access token, an ID token and a new
// refresh token for the grant's user.
func (s *server) issueUserTokens(w http.ResponseWriter, g *refreshGrant, nonce, label string) {
	u := s.login.users[g.user]
	now := s.now()
	key := s.keys.signer()
	base := func(aud string) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": s.cfg.IssuerURL, "sub": u.Name, "aud": aud,
			"iat": jwt.NewNumericDate(now), "exp": jwt.NewNumericDate(now.Add(s.cfg.TokenTTL)),
			"jti": rand.Text(), "auth_time": jwt.NewNumericDate(g.authTime),
		}
		scopes := " " + g.scope + " "
		if strings.Contains(scopes, " profile ") {
			c["name"], c["preferred_username"] = u.Name, u.Name
		}
		if strings.Contains(scopes, " email ") {
			c["email"] = u.Name + "@example.com"
		}
		for k, v := range u.Claims {
			if _, reserved := c[k]; !reserved || k == "name" || k == "email" || k == "preferred_username" {
				c[k] = v
			}
		}
		return c
	}
	access := base(s.cfg.Audience)
	access["client_id"], access["scope"] = g.clientID, g.scope
	id := base(g.clientID)
	if nonce != "" {
		id["nonce"] = nonce
	}
	at, err := key.sign(access, nil, true)
	if err == nil {
		var it string
		if it, err = key.sign(id, nil, true); err == nil {
			rt := "rt-" + rand.Text() + rand.Text()
			next := *g
			next.expires = now.Add(s.cfg.RefreshTokenTTL)
			s.login.mu.Lock()
			s.login.sweep(now)
			s.login.refresh[rt] = &next
			if c, ok := s.login.codes[g.code]; ok {
				c.refresh = append(c.refresh, rt)
			}
			s.login.mu.Unlock()
			s.metrics.tokenIssued(label)
			s.log.Info("issued user tokens", "username", u.Name, "client_id", g.clientID, "grant", label)
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
			writeJSON(w, http.StatusOK, loginTokenResponse{
				tokenResponse: tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(s.cfg.TokenTTL.Seconds()), Scope: g.scope},
				RefreshToken:  rt,
				IDToken:       it,
			})
			return
		}
	}
	s.log.Error("sign user tokens", "err", err)
	s.tokenError(w, http.StatusInternalServerError, "server_error", "")
}

// handleEndSession is RP-initiated logout (OpenID Connect RP-Initiated
// Logout 1.0 §2): it revokes the refresh tokens of the user named by
// id_token_hint for its client, then returns the browser to
// post_logout_redirect_uri (with state) or shows a signed-out page. This
// service keeps no login session of its own, so there is nothing else to
// end.
func (s *server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.authorizePage(w, http.StatusBadRequest, "the request is not a valid form")
		return
	}
	hint, clientID := r.Form.Get("id_token_hint"), r.Form.Get("client_id")
	user := ""
	if hint != "" {
		// An expired hint still names the session to end (§2: the OP
		// SHOULD accept it); its signature and issuer must be ours.
		claims := jwt.MapClaims{}
		p := jwt.NewParser(jwt.WithValidMethods([]string{s.keys.alg}), jwt.WithIssuer(s.cfg.IssuerURL), jwt.WithoutClaimsValidation())
		if _, err := p.ParseWithClaims(hint, claims, s.ownKeyfunc); err != nil {
			s.authorizePage(w, http.StatusBadRequest, "id_token_hint is not an ID token of this issuer")
			return
		}
		user, _ = claims["sub"].(string)
		aud, _ := claims.GetAudience()
		if clientID == "" && len(aud) == 1 {
			clientID = aud[0]
		}
		if clientID != "" && (len(aud) == 0 || !slices.Contains(aud, clientID)) {
			s.authorizePage(w, http.StatusBadRequest, "id_token_hint was not issued to client_id")
			return
		}
	}
	ret := r.Form.Get("post_logout_redirect_uri")
	if ret != "" && (clientID == "" || !s.redirectAllowed(ret)) {
		s.authorizePage(w, http.StatusBadRequest, "post_logout_redirect_uri is not registered for a known client")
		return
	}
	if user != "" {
		s.login.mu.Lock()
		for rt, g := range s.login.refresh {
			if g.user == user && g.clientID == clientID {
				delete(s.login.refresh, rt)
			}
		}
		s.login.mu.Unlock()
		s.log.Info("user signed out", "username", user, "client_id", clientID)
	}
	if ret == "" {
		s.authorizePage(w, http.StatusOK, "You are signed out.")
		return
	}
	u, _ := url.Parse(ret)
	if st := r.Form.Get("state"); st != "" {
		q := u.Query()
		q.Set("state", st)
		u.RawQuery = q.Encode()
	}
	http.Redirect(w, r, u.String(), http.StatusFound)
}
