package login

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// setSession seals s into the session cookie. The cookie lives until the
// claims expire, or with a refresh token until the session's absolute end,
// so it can be renewed. It fails, setting nothing, when the cookie would
// exceed MaxCookieBytes: a cookie is never split.
func (l *Login) setSession(w http.ResponseWriter, s *session, now time.Time) error {
	value, err := l.sealSession(s)
	if err != nil {
		return err
	}
	until := time.Unix(s.Expires, 0)
	if s.Refresh != "" {
		until = time.Unix(s.Ends, 0)
	}
	l.setCookie(w, l.opts.CookieName, value, "/", l.opts.CookieDomain, until.Sub(now))
	return nil
}

// sealSession seals s and checks the cookie's size.
func (l *Login) sealSession(s *session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	value := l.seal.seal(plain, aadSession+l.opts.CookieName)
	if n := len(l.opts.CookieName) + 1 + len(value); n > MaxCookieBytes {
		return "", fmt.Errorf("the session cookie would be %d bytes, more than %d: keep fewer claims, or drop KeepIDToken", n, MaxCookieBytes)
	}
	return value, nil
}

// Session returns the claims of the request's session when it has a valid
// one. A session near its end (RefreshAhead) that holds a refresh token is
// renewed first, without a redirect, and the new cookie set on w; a
// session sealed by an older cookie key is re-sealed with the current
// one. A cookie that does not open (tampered with, from another key, or a
// removed one) or has ended is deleted, and ok is false: the proxy then
// refuses or starts a login, as for a request without a token.
func (l *Login) Session(w http.ResponseWriter, r *http.Request) (verifier.Claims, bool) {
	ck, err := r.Cookie(l.opts.CookieName)
	if err != nil || ck.Value == "" {
		return verifier.Claims{}, false
	}
	plain, rotated, err := l.seal.open(ck.Value, aadSession+l.opts.CookieName)
	if err != nil {
		l.opts.Log.Info("login: session cookie refused", "err", err)
		l.clearSession(w)
		return verifier.Claims{}, false
	}
	s, values, err := decodeSession(plain)
	if err != nil {
		l.opts.Log.Warn("login: session cookie refused", "err", err)
		l.clearSession(w)
		return verifier.Claims{}, false
	}
	now := l.opts.Now()
	expires := time.Unix(s.Expires, 0)
	if l.opts.Refresh && s.Refresh != "" && now.Add(l.opts.RefreshAhead).After(expires) && now.Unix() < s.Ends {
		if ns, nv, ok := l.refresh(r.Context(), ck.Value, s, values); ok {
			s, values, rotated = ns, nv, false
			expires = time.Unix(s.Expires, 0)
			if err := l.setSession(w, s, now); err != nil {
				l.opts.Log.Warn("login: renewed session not set", "err", err)
			}
		}
	}
	if !now.Before(expires) || now.Unix() >= s.Ends {
		l.clearSession(w)
		return verifier.Claims{}, false
	}
	if rotated {
		// Opened by an older key: re-seal with the current one, so that
		// the old key can be removed once sessions have cycled.
		if err := l.setSession(w, s, now); err != nil {
			l.opts.Log.Warn("login: re-sealed session not set", "err", err)
		}
	}
	return claimsOf(s.Claims, values, expires, l.opts.CookieName), true
}

// renewed is the outcome of one refresh, shared by the requests that
// carried the same old cookie.
type renewed struct {
	s      *session
	values map[string]any
}

// refresh renews a session with its refresh token. Concurrent requests with
// the same cookie share one grant; requests with that cookie arriving
// shortly after get the same result from renewals, because their browser
// has not stored the new cookie yet.
func (l *Login) refresh(ctx context.Context, cookie string, s *session, values map[string]any) (*session, map[string]any, bool) {
	key := sha256.Sum256([]byte(cookie))
	if got, ok := l.renewed.get(key, l.opts.Now()); ok {
		return got.s, got.values, true
	}
	v, err, _ := l.refreshes.Do(string(key[:]), func() (any, error) {
		// The grant outlives the request that started it: it is shared.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.HTTPClient.Timeout+time.Second)
		defer cancel()
		got, err := l.renew(ctx, s, values)
		if err != nil {
			l.opts.Recorder.SessionRefreshed(RefreshFailed)
			return nil, err
		}
		l.opts.Recorder.SessionRefreshed(RefreshOK)
		l.renewed.put(key, got, l.opts.Now())
		return got, nil
	})
	if err != nil {
		l.opts.Log.Warn("login: session refresh failed", "err", err)
		return nil, nil, false
	}
	got := v.(renewed)
	return got.s, got.values, true
}

// renew makes the refresh-token grant (RFC 6749 §6). A new ID token
// replaces the claims after the same checks as at login, and must be about
// the same subject from the same issuer (OpenID Connect Core §12.2);
// without one, the claims stay and live as long as the new access token.
func (l *Login) renew(ctx context.Context, s *session, values map[string]any) (renewed, error) {
	p, err := l.discover.get(ctx)
	if err != nil {
		return renewed{}, err
	}
	tok, _, err := l.exchange(ctx, p, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {s.Refresh},
	})
	if err != nil {
		return renewed{}, err
	}
	now := l.opts.Now()
	ends := time.Unix(s.Ends, 0)
	next := &session{Claims: s.Claims, Ends: s.Ends, IDToken: s.IDToken, Refresh: s.Refresh}
	if tok.RefreshToken != "" {
		next.Refresh = tok.RefreshToken // rotated (RFC 9700 §4.14.2)
	}
	if tok.IDToken != "" {
		c, _, err := l.checkIDToken(ctx, p, tok.IDToken, "")
		if err != nil {
			return renewed{}, err
		}
		if c.Subject != values["sub"] || c.Issuer != values["iss"] {
			return renewed{}, errors.New("the renewed ID token is about another subject or from another issuer")
		}
		fresh, err := l.newSession(c, tok, now, ends)
		if err != nil {
			return renewed{}, err
		}
		fresh.Refresh = next.Refresh
		if !l.opts.KeepIDToken {
			fresh.IDToken = ""
		}
		next = fresh
	} else {
		if tok.ExpiresIn <= 0 {
			return renewed{}, errors.New("the refresh answer has neither an id_token nor expires_in")
		}
		next.Expires = min(now.Unix()+tok.ExpiresIn, s.Ends)
	}
	nv, err := decodeClaims(next.Claims)
	if err != nil {
		return renewed{}, err
	}
	return renewed{s: next, values: nv}, nil
}

// renewals remembers each refresh's result for renewalMemory, by the hash
// of the cookie it renewed.
type renewals struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]renewalEntry
}

type renewalEntry struct {
	got   renewed
	until time.Time
}

// renewalMemory is how long a refresh's result answers requests still
// carrying the old cookie: long enough for a page's parallel requests.
const renewalMemory = 30 * time.Second

func newRenewals() *renewals { return &renewals{m: map[[sha256.Size]byte]renewalEntry{}} }

func (r *renewals) get(key [sha256.Size]byte, now time.Time) (renewed, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[key]
	if !ok || now.After(e.until) {
		return renewed{}, false
	}
	return e.got, true
}

// put remembers a result and forgets the expired ones, so the map holds
// at most the refreshes of the last renewalMemory.
func (r *renewals) put(key [sha256.Size]byte, got renewed, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.m {
		if now.After(e.until) {
			delete(r.m, k)
		}
	}
	r.m[key] = renewalEntry{got: got, until: now.Add(renewalMemory)}
}
