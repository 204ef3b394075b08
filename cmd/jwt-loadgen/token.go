package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxTokenResponse bounds a token response body.
	maxTokenResponse = 1 << 20
	// assumedLifetime is used when a response says neither expires_in nor
	// exp: refresh often rather than send an expired token for long.
	assumedLifetime = time.Minute
	// refreshAt is the share of a token's lifetime after which a new one
	// is fetched: early enough that a slow token service or a few failed
	// tries still leave a valid token in hand.
	refreshAt = 0.75
	// retryMin and retryMax bound the backoff between failed fetches.
	retryMin = 500 * time.Millisecond
	retryMax = 5 * time.Second
)

// token is an access token and its lifetime.
type token struct {
	value string
	got   time.Time // when the response arrived
	exp   time.Time
}

// tokenSource fetches tokens with the client_credentials grant and keeps
// the last good one: while the token service is down, requests go on with
// it (and get whatever the servers make of it), which is the outage drill.
type tokenSource struct {
	url, clientID, secret, scope string
	client                       *http.Client
	metrics                      *loadMetrics
	log                          *slog.Logger
	now                          func() time.Time

	cur       atomic.Pointer[token]
	firstOnce sync.Once
	first     chan struct{} // closed when the first token is in hand
}

func newTokenSource(cfg *Config, secret string, client *http.Client, m *loadMetrics, log *slog.Logger) *tokenSource {
	return &tokenSource{
		url: cfg.TokenURL, clientID: cfg.ClientID, secret: secret, scope: cfg.Scope,
		client: client, metrics: m, log: log, now: time.Now,
		first: make(chan struct{}),
	}
}

// current is the token to send, or nil before the first one.
func (s *tokenSource) current() *token { return s.cur.Load() }

// ready is closed once the first token is in hand.
func (s *tokenSource) ready() <-chan struct{} { return s.first }

// run fetches a token, then a new one after refreshAt of each token's
// lifetime, retrying failures with backoff, until ctx ends (then it returns
// nil).
func (s *tokenSource) run(ctx context.Context) error {
	retry := retryMin
	for {
		tok, err := s.fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		if err != nil {
			s.metrics.token(err, time.Time{})
			attrs := []any{"error", err, "retry_in", retry.String()}
			if old := s.current(); old != nil {
				attrs = append(attrs, "sending_with_token_expiring_in", old.exp.Sub(s.now()).Round(time.Second).String())
			}
			s.log.Warn("token fetch failed", attrs...)
			wait, retry = retry, min(2*retry, retryMax)
		} else {
			s.metrics.token(nil, tok.exp)
			s.cur.Store(tok)
			s.firstOnce.Do(func() { close(s.first) })
			life := tok.exp.Sub(tok.got)
			wait, retry = time.Duration(float64(life)*refreshAt), retryMin
			s.log.Debug("token fetched", "expires_in", life.String(), "refresh_in", wait.String())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// tokenResponse is the RFC 6749 §5.1 body, and §5.2's error fields.
type tokenResponse struct {
	AccessToken string      `json:"access_token"`
	TokenType   string      `json:"token_type"`
	ExpiresIn   json.Number `json:"expires_in"`
	Error       string      `json:"error"`
	Description string      `json:"error_description"`
}

// fetch asks for one token with the client_credentials grant (RFC 6749
// §4.4), the client authenticated with HTTP Basic (§2.3.1: id and secret
// form-urlencoded first).
func (s *tokenSource) fetch(ctx context.Context) (*token, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if s.scope != "" {
		form.Set("scope", s.scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(s.clientID), url.QueryEscape(s.secret))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return nil, fmt.Errorf("read token response: %w", err)
	}
	if len(body) > maxTokenResponse {
		return nil, fmt.Errorf("token response larger than %d bytes", maxTokenResponse)
	}
	got := s.now()
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK {
		if jsonErr == nil && tr.Error != "" {
			return nil, fmt.Errorf("token endpoint: %s: %s %s", resp.Status, tr.Error, tr.Description)
		}
		return nil, fmt.Errorf("token endpoint: %s", resp.Status)
	}
	if jsonErr != nil {
		return nil, fmt.Errorf("token response: %w", jsonErr)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("token response: no access_token")
	}
	if !strings.EqualFold(tr.TokenType, "Bearer") {
		return nil, fmt.Errorf("token response: token_type %q, want Bearer", tr.TokenType)
	}
	return &token{value: tr.AccessToken, got: got, exp: expiry(tr, got)}, nil
}

// expiry is when the token stops being valid: expires_in (RFC 6749 §5.1)
// when given, else the exp claim of a JWT, else assumedLifetime from now.
func expiry(tr tokenResponse, got time.Time) time.Time {
	if n, err := tr.ExpiresIn.Float64(); err == nil && n > 0 {
		return got.Add(time.Duration(n * float64(time.Second)))
	}
	if exp, ok := jwtExp(tr.AccessToken); ok && exp.After(got) {
		return exp
	}
	return got.Add(assumedLifetime)
}

// jwtExp reads the exp claim of a compact JWT without verifying it: the
// load generator only schedules its refresh with it; the servers under test
// do the verifying.
func jwtExp(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return time.Time{}, false
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 || math.IsInf(f, 0) || f > math.MaxInt64/1e9 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f) // RFC 7519 §2: NumericDate may be fractional
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
