package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// flow is one login in progress, sealed into a short-lived cookie bound to
// its state: the browser that started the login is the only one that can
// finish it (RFC 6749 §10.12, RFC 7636, OpenID Connect Core §15.5.2).
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // PKCE code_verifier
	Redirect string `json:"u"` // the redirect_uri sent, sent again at the exchange
	Return   string `json:"r"` // where the browser was going
	Expires  int64  `json:"e"`
}

// stateLen is the length of rand.Text: 26 base32 characters, 130 bits.
const stateLen = 26

// flowCookie names the flow cookie of one state, so that logins started in
// several tabs do not overwrite each other.
func (l *Login) flowCookie(state string) string {
	return l.opts.CookieName + "_f_" + state[:12]
}

// validState reports whether s looks like a state this package made, before
// it becomes part of a cookie name.
func validState(s string) bool {
	if len(s) != stateLen {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// Start sends a browser to the provider to sign in, and comes back to the
// URL it asked for. The proxy calls it for a request without a token when
// Wants(r) is true.
func (l *Login) Start(w http.ResponseWriter, r *http.Request) {
	p, err := l.discover.get(r.Context())
	if err != nil {
		l.opts.Log.Error("login: discovery failed", "issuer", l.opts.Issuer, "err", err)
		l.opts.Recorder.LoginFailed(Unavailable)
		failPage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again in a moment.")
		return
	}
	ret, ok := l.safeReturn(r, r.URL.RequestURI())
	if !ok {
		ret = "/"
	}
	f := flow{
		State:    rand.Text(),
		Nonce:    rand.Text(),
		Verifier: rand.Text() + rand.Text(), // 52 characters (RFC 7636 §4.1: 43-128)
		Redirect: l.base(r) + l.opts.CallbackPath,
		Return:   ret,
		Expires:  l.opts.Now().Add(DefaultFlowTTL).Unix(),
	}
	plain, _ := json.Marshal(f) // strings and an int: cannot fail
	name := l.flowCookie(f.State)
	l.setCookie(w, name, l.seal.seal(plain, aadFlow+name), l.opts.CallbackPath, "", DefaultFlowTTL)
	sum := sha256.Sum256([]byte(f.Verifier))
	l.opts.Recorder.LoginStarted()
	redirect(w, withQuery(p.AuthorizationEndpoint, url.Values{
		"response_type":         {"code"},
		"client_id":             {l.opts.ClientID},
		"redirect_uri":          {f.Redirect},
		"scope":                 {strings.Join(l.opts.Scopes, " ")},
		"state":                 {f.State},
		"nonce":                 {f.Nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}))
}

// callback finishes a login: the state must match a flow cookie of this
// browser, the code is exchanged with the PKCE verifier, the ID token must
// pass the verifier and carry the flow's nonce. Only then is a session set.
func (l *Login) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, ok := l.takeFlow(w, r, q.Get("state"))
	if !ok {
		l.fail(w, WrongState, http.StatusBadRequest, "This sign-in link is not valid (expired, used, or started elsewhere).", errors.New("no flow cookie opens for this state"))
		return
	}
	if e := q.Get("error"); e != "" {
		// RFC 6749 §4.1.2.1: the provider refused, e.g. access_denied.
		l.fail(w, IdPError, http.StatusForbidden, "The sign-in service refused the sign-in.", errors.New("authorization error "+e+": "+q.Get("error_description")))
		return
	}
	code := q.Get("code")
	if code == "" {
		l.fail(w, BadCallback, http.StatusBadRequest, "The sign-in answer is incomplete.", errors.New("the callback has no code"))
		return
	}
	p, err := l.discover.get(r.Context())
	if err != nil {
		l.fail(w, Unavailable, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again in a moment.", err)
		return
	}
	tok, reason, err := l.exchange(r.Context(), p, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {f.Redirect},
		"code_verifier": {f.Verifier},
	})
	if err != nil {
		l.fail(w, reason, statusOf(reason), "The sign-in could not be completed.", err)
		return
	}
	claims, reason, err := l.checkIDToken(r.Context(), p, tok.IDToken, f.Nonce)
	if err != nil {
		l.fail(w, reason, http.StatusUnauthorized, "The sign-in could not be verified.", err)
		return
	}
	now := l.opts.Now()
	s, err := l.newSession(claims, tok, now, now.Add(l.opts.MaxAge))
	if err != nil {
		l.fail(w, BadIDToken, http.StatusUnauthorized, "The sign-in could not be verified.", err)
		return
	}
	if err := l.setSession(w, s, now); err != nil {
		l.fail(w, SessionTooLarge, http.StatusInternalServerError, "The sign-in produced a session too large for a cookie.", err)
		return
	}
	l.opts.Recorder.LoginCompleted()
	l.opts.Log.Info("login: signed in", "sub", claims.Subject, "iss", claims.Issuer)
	ret, ok := l.safeReturn(r, f.Return)
	if !ok {
		ret = "/"
	}
	redirect(w, ret)
}

// takeFlow opens the flow cookie of state and deletes it: a flow is used at
// most once, whatever the outcome.
func (l *Login) takeFlow(w http.ResponseWriter, r *http.Request, state string) (*flow, bool) {
	if !validState(state) {
		return nil, false
	}
	name := l.flowCookie(state)
	c, err := r.Cookie(name)
	if err != nil {
		return nil, false
	}
	l.setCookie(w, name, "", l.opts.CallbackPath, "", 0)
	plain, _, err := l.seal.open(c.Value, aadFlow+name)
	if err != nil {
		return nil, false
	}
	var f flow
	if err := json.Unmarshal(plain, &f); err != nil {
		return nil, false
	}
	if subtle.ConstantTimeCompare([]byte(f.State), []byte(state)) != 1 || l.opts.Now().Unix() >= f.Expires {
		return nil, false
	}
	return &f, true
}

// fail records a failed login, logs why and answers the browser.
func (l *Login) fail(w http.ResponseWriter, reason Reason, status int, msg string, err error) {
	l.opts.Recorder.LoginFailed(reason)
	l.opts.Log.Warn("login: failed", "reason", string(reason), "err", err)
	failPage(w, status, msg)
}

// statusOf is the status of a failed exchange: the provider's fault is a
// gateway error, a refused code the browser's.
func statusOf(reason Reason) int {
	switch reason {
	case ExchangeFailed:
		return http.StatusBadGateway
	case Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// checkIDToken verifies an ID token with the injected verifier, then makes
// the OpenID Connect Core §3.1.3.7 checks that are the login's own: the
// issuer is the configured one, the audience holds the client id, azp (when
// there are several audiences or azp is present) is the client id, and the
// nonce is the flow's. nonce is empty on a refresh, which checks instead
// that iss and sub are the session's (§12.2).
func (l *Login) checkIDToken(ctx context.Context, p *provider, raw, nonce string) (verifier.Claims, Reason, error) {
	if raw == "" {
		return verifier.Claims{}, BadIDToken, errors.New("the token response has no id_token")
	}
	c, err := l.opts.VerifyIDToken(ctx, raw)
	if err != nil {
		return verifier.Claims{}, BadIDToken, err
	}
	if c.Issuer != p.Issuer {
		return verifier.Claims{}, BadIDToken, errors.New("the ID token's iss is " + c.Issuer + ", not " + p.Issuer)
	}
	auds := audiences(c)
	if !slices.Contains(auds, l.opts.ClientID) {
		return verifier.Claims{}, BadIDToken, errors.New("the ID token's aud does not name this client")
	}
	azp, hasAZP := c.Lookup("azp")
	if (len(auds) > 1 || hasAZP) && azp != l.opts.ClientID {
		return verifier.Claims{}, BadIDToken, errors.New("the ID token's azp is not this client")
	}
	if c.Expiry.IsZero() {
		return verifier.Claims{}, BadIDToken, errors.New("the ID token has no exp")
	}
	got, _ := c.Lookup("nonce")
	gotNonce, _ := got.(string)
	if nonce != "" && subtle.ConstantTimeCompare([]byte(gotNonce), []byte(nonce)) != 1 {
		return verifier.Claims{}, BadNonce, errors.New("the ID token's nonce is not this login's")
	}
	return c, "", nil
}

// audiences reads aud, a string or an array of strings (RFC 7519 §4.1.3).
func audiences(c verifier.Claims) []string {
	v, _ := c.Lookup("aud")
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// newSession builds the session of a verified ID token. ends is the
// session's absolute end, kept across refreshes.
func (l *Login) newSession(c verifier.Claims, tok *tokenResponse, now, ends time.Time) (*session, error) {
	kept, err := keepClaims(c, l.opts.KeepClaims)
	if err != nil {
		return nil, err
	}
	s := &session{Claims: kept, Expires: c.Expiry.Unix(), Ends: ends.Unix()}
	if l.opts.KeepIDToken {
		s.IDToken = tok.IDToken
	}
	if l.opts.Refresh {
		s.Refresh = tok.RefreshToken
	}
	if s.Expires > s.Ends {
		s.Expires = s.Ends
	}
	if s.Expires <= now.Unix() {
		return nil, errors.New("the ID token has expired already")
	}
	return s, nil
}
