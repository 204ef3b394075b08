package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"time"
)

// BackChannelLogoutEvent is the member of the events claim that makes a JWT
// a logout token (OpenID Connect Back-Channel Logout 1.0 §2.4).
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Results of a back-channel logout request, the values of Recorder.Logout.
const (
	LogoutOK          = "ok"
	LogoutInvalid     = "invalid"     // not a valid logout token, or a bad request
	LogoutReplayed    = "replayed"    // a jti already used
	LogoutUnsupported = "unsupported" // sid without sub: access tokens carry no session
)

// Defaults of LogoutOptions.
const (
	DefaultLogoutMaxLifetime = 10 * time.Minute
	DefaultLogoutMaxReplay   = 100_000
	maxLogoutBody            = 64 << 10
)

// VerifyFunc checks a logout token's signature, iss, aud, exp and iat the
// way the sidecar checks access tokens (its keys, ISSUERS, AUDIENCES; aud
// is the sidecar's client_id at the OP) and returns its claims. Any error
// refuses the token.
type VerifyFunc func(ctx context.Context, token string) (map[string]any, error)

// LogoutOptions configure the back-channel logout handler.
type LogoutOptions struct {
	// Verify is required.
	Verify VerifyFunc
	// MaxTokenLifetime is the longest lifetime of an access token of the
	// issuer: the subject entry a logout adds lives this long after the
	// logout. Required.
	MaxTokenLifetime time.Duration
	// MaxLifetime refuses logout tokens whose exp is further ahead, so that
	// the jti memory stays bounded (default 10m).
	MaxLifetime time.Duration
	// MaxReplay bounds the jtis remembered at once (default 100,000); a
	// logout beyond it, while all are live, gets 503.
	MaxReplay int
}

// LogoutHandler receives OpenID Connect Back-Channel Logout 1.0 requests
// and revokes, in the store, every token of the logged-out subject issued
// before the logout.
type LogoutHandler struct {
	store *Store
	opts  LogoutOptions

	mu   sync.Mutex
	seen map[tokenKey]time.Time // (iss, jti) of used logout tokens, until their exp
}

// NewLogoutHandler builds the handler. It is mounted on the proxy listener
// at a path of the operator's choosing (the OP posts to it).
func NewLogoutHandler(store *Store, o LogoutOptions) (*LogoutHandler, error) {
	if o.Verify == nil {
		return nil, errors.New("back-channel logout needs a verify function")
	}
	if o.MaxTokenLifetime <= 0 {
		return nil, errors.New("back-channel logout needs the longest access token lifetime")
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = DefaultLogoutMaxLifetime
	}
	if o.MaxReplay <= 0 {
		o.MaxReplay = DefaultLogoutMaxReplay
	}
	return &LogoutHandler{store: store, opts: o, seen: map[tokenKey]time.Time{}}, nil
}

// logoutError is a refusal: its text is the error_description, result the
// Recorder value and status the HTTP status.
type logoutError struct {
	status int
	result string
	desc   string
}

func (e *logoutError) Error() string { return e.desc }

func invalid(format string, a ...any) *logoutError {
	return &logoutError{status: http.StatusBadRequest, result: LogoutInvalid, desc: fmt.Sprintf(format, a...)}
}

// ServeHTTP implements §2.5 (the request) and §2.8 (the response): 200 on
// success, 400 invalid_request with a description otherwise, never cached.
func (h *LogoutHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := h.logout(r); err != nil {
		h.store.opts.Recorder.Logout(err.result)
		h.store.opts.Log.Warn("back-channel logout refused", "result", err.result, "error", err.desc)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(err.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": err.desc})
		return
	}
	h.store.opts.Recorder.Logout(LogoutOK)
	w.WriteHeader(http.StatusOK)
}

func (h *LogoutHandler) logout(r *http.Request) *logoutError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return invalid("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		return invalid("the body is not a valid form")
	}
	toks := r.PostForm["logout_token"]
	if len(toks) != 1 || toks[0] == "" {
		return invalid("exactly one logout_token is required")
	}
	claims, err := h.opts.Verify(r.Context(), toks[0])
	if err != nil {
		return invalid("the logout token is invalid")
	}
	lt, lerr := h.check(claims)
	if lerr != nil {
		return lerr
	}
	if lerr := h.spend(lt); lerr != nil {
		return lerr
	}
	// Every token of the subject issued up to now is revoked. NumericDates
	// of iat are often whole seconds, so the time is rounded up to the next
	// second: a token issued in the second of the logout, before it, is
	// covered (one issued just after it in that second is refused too).
	now := h.store.opts.Now()
	before := now.Truncate(time.Second).Add(time.Second)
	h.store.AddSubject(lt.iss, lt.sub, before, before.Add(h.opts.MaxTokenLifetime))
	h.store.opts.Log.Info("back-channel logout: tokens of the subject revoked", "iss", lt.iss, "sub", lt.sub, "issued_before", before)
	return nil
}

// logoutToken is what check keeps of the claims.
type logoutToken struct {
	iss, sub, jti string
	exp           time.Time
}

// check applies §2.6 steps 3-7 to verified claims (steps 1-2, signature,
// iss, aud, iat and exp, are Verify's).
func (h *LogoutHandler) check(c map[string]any) (logoutToken, *logoutError) {
	var lt logoutToken
	var ok bool
	if lt.iss, ok = c["iss"].(string); !ok || lt.iss == "" {
		return lt, invalid("the logout token has no iss")
	}
	// §2.4: events must hold the back-channel logout member, an object.
	events, _ := c["events"].(map[string]any)
	if _, ok := events[BackChannelLogoutEvent].(map[string]any); !ok {
		return lt, invalid("the logout token's events claim has no back-channel logout event")
	}
	// §2.6 step 5: a nonce makes it an ID token, never a logout token.
	if _, ok := c["nonce"]; ok {
		return lt, invalid("a logout token must not have a nonce")
	}
	sub, hasSub := c["sub"].(string)
	sid, hasSid := c["sid"].(string)
	hasSub, hasSid = hasSub && sub != "", hasSid && sid != ""
	switch {
	case !hasSub && !hasSid:
		return lt, invalid("the logout token has neither sub nor sid")
	case !hasSub:
		// Access tokens name their subject, not the OP's session, so a
		// session-only logout cannot be mapped to the tokens it covers.
		return lt, &logoutError{status: http.StatusBadRequest, result: LogoutUnsupported,
			desc: "logout tokens with sid but no sub are not supported: tokens are revoked by subject"}
	}
	lt.sub = sub
	if lt.jti, ok = c["jti"].(string); !ok || lt.jti == "" {
		return lt, invalid("the logout token has no jti")
	}
	exp, err := numericDate(c["exp"])
	if err != nil {
		return lt, invalid("the logout token has no valid exp")
	}
	if exp.After(h.store.opts.Now().Add(h.opts.MaxLifetime)) {
		return lt, invalid("the logout token's exp is more than %s ahead", h.opts.MaxLifetime)
	}
	lt.exp = exp
	return lt, nil
}

// spend remembers the token's (iss, jti) until its exp; a second use is
// refused (§2.6 step 7 allows the check; replay of a logout would be
// harmless but is still a sign of trouble worth counting).
func (h *LogoutHandler) spend(lt logoutToken) *logoutError {
	now := h.store.opts.Now()
	k := tokenKey{lt.iss, lt.jti}
	h.mu.Lock()
	defer h.mu.Unlock()
	if until, ok := h.seen[k]; ok && !now.After(until) {
		return &logoutError{status: http.StatusBadRequest, result: LogoutReplayed, desc: "the logout token was already used"}
	}
	if len(h.seen) >= h.opts.MaxReplay {
		for key, until := range h.seen {
			if now.After(until) {
				delete(h.seen, key)
			}
		}
		if len(h.seen) >= h.opts.MaxReplay {
			return &logoutError{status: http.StatusServiceUnavailable, result: LogoutInvalid, desc: "too many logouts at once; retry later"}
		}
	}
	h.seen[k] = lt.exp
	return nil
}

// numericDate reads a NumericDate claim as a verifier decodes it: a
// float64, or a json.Number.
func numericDate(v any) (time.Time, error) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return time.Time{}, err
		}
	default:
		return time.Time{}, errors.New("not a number")
	}
	if f <= 0 || f > maxNumericDate {
		return time.Time{}, errors.New("out of range")
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
}
