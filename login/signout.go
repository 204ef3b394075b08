package login

import (
	"encoding/json"
	"net/http"
	"net/url"
)

// signOut clears the session and sends the browser on: to the provider's
// end_session_endpoint when discovery names one (OpenID Connect
// RP-Initiated Logout 1.0 §2), which returns it to post_logout_redirect_uri;
// otherwise straight to the return URL. The return URL is the rd parameter
// when it passes safeReturn, else "/".
func (l *Login) signOut(w http.ResponseWriter, r *http.Request) {
	ret, ok := l.safeReturn(r, r.FormValue("rd"))
	if !ok {
		ret = "/"
	}
	idToken := l.keptIDToken(r)
	l.clearSession(w)
	p, err := l.discover.get(r.Context())
	if err != nil || p.EndSessionEndpoint == "" {
		if err != nil {
			l.opts.Log.Warn("login: signed out here only, discovery failed", "err", err)
		}
		redirect(w, ret)
		return
	}
	abs := ret
	if u, err := url.Parse(ret); err == nil && u.Host == "" {
		abs = l.base(r) + ret
	}
	q := url.Values{
		"client_id":                {l.opts.ClientID},
		"post_logout_redirect_uri": {abs},
	}
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	redirect(w, withQuery(p.EndSessionEndpoint, q))
}

// keptIDToken is the ID token of the request's session, when the session
// opens and kept one. An expired session still names its ID token: the
// provider may need the hint to end its own session.
func (l *Login) keptIDToken(r *http.Request) string {
	ck, err := r.Cookie(l.opts.CookieName)
	if err != nil {
		return ""
	}
	plain, _, err := l.seal.open(ck.Value, aadSession+l.opts.CookieName)
	if err != nil {
		return ""
	}
	var s session
	if json.Unmarshal(plain, &s) != nil {
		return ""
	}
	return s.IDToken
}
