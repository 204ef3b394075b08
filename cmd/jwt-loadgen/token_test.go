package main

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// jwtWith is a compact JWT (unsigned: only its payload matters here).
func jwtWith(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(payload)) + ".c2ln"
}

func TestExpiry(t *testing.T) {
	got := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name string
		tr   tokenResponse
		want time.Time
	}{
		{name: "expires_in wins", tr: tokenResponse{ExpiresIn: "600", AccessToken: jwtWith(`{"exp":1800000010}`)}, want: got.Add(600 * time.Second)},
		{name: "fractional expires_in", tr: tokenResponse{ExpiresIn: "0.5"}, want: got.Add(500 * time.Millisecond)},
		{name: "exp of the JWT", tr: tokenResponse{AccessToken: jwtWith(`{"exp":1800000010}`)}, want: got.Add(10 * time.Second)},
		{name: "fractional exp", tr: tokenResponse{AccessToken: jwtWith(`{"exp":1800000010.25}`)}, want: got.Add(10250 * time.Millisecond)},
		{name: "exp in the past", tr: tokenResponse{AccessToken: jwtWith(`{"exp":1700000000}`)}, want: got.Add(assumedLifetime)},
		{name: "exp not a number", tr: tokenResponse{AccessToken: jwtWith(`{"exp":"soon"}`)}, want: got.Add(assumedLifetime)},
		{name: "exp huge", tr: tokenResponse{AccessToken: jwtWith(`{"exp":1e300}`)}, want: got.Add(assumedLifetime)},
		{name: "opaque token", tr: tokenResponse{AccessToken: "abc"}, want: got.Add(assumedLifetime)},
		{name: "zero expires_in", tr: tokenResponse{ExpiresIn: "0", AccessToken: "abc"}, want: got.Add(assumedLifetime)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e := expiry(tt.tr, got); !e.Equal(tt.want) {
				t.Errorf("expiry = %s, want %s", e, tt.want)
			}
		})
	}
}

// TestFetchRefusals: every answer that is not a usable token is an error
// that says why, and never a token.
func TestFetchRefusals(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{name: "bad client", status: http.StatusUnauthorized, body: `{"error":"invalid_client","error_description":"unknown client"}`, wantErr: "401 Unauthorized: invalid_client unknown client"},
		{name: "server error, not JSON", status: http.StatusInternalServerError, body: "boom", wantErr: "500 Internal Server Error"},
		{name: "not JSON", status: http.StatusOK, body: "<html>", wantErr: "token response:"},
		{name: "no access_token", status: http.StatusOK, body: `{"token_type":"Bearer"}`, wantErr: "no access_token"},
		{name: "not a bearer token", status: http.StatusOK, body: `{"access_token":"x","token_type":"mac"}`, wantErr: `token_type "mac"`},
		{name: "too large", status: http.StatusOK, body: `{"access_token":"` + strings.Repeat("a", maxTokenResponse) + `"}`, wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			s := newTokenSource(&Config{TokenURL: srv.URL, ClientID: "c"}, "s", srv.Client(),
				newMetrics(prometheus.NewRegistry(), nil, "test"), slog.New(slog.DiscardHandler))
			tok, err := s.fetch(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("fetch = %v, want an error with %q", err, tt.wantErr)
			}
			if tok != nil {
				t.Errorf("fetch returned a token with the error")
			}
		})
	}
}

// TestFetchRequest checks what goes on the wire: RFC 6749 §4.4 form and
// §2.3.1 Basic with both parts form-urlencoded, and the scope when set.
func TestFetchRequest(t *testing.T) {
	var gotUser, gotPass, gotType, gotGrant, gotScope string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUser, gotPass, _ = r.BasicAuth()
		gotType = r.Header.Get("Content-Type")
		gotGrant, gotScope = r.PostFormValue("grant_type"), r.PostFormValue("scope")
		w.Write([]byte(`{"access_token":"abc","token_type":"bearer","expires_in":"60"}`))
	}))
	defer srv.Close()
	s := newTokenSource(&Config{TokenURL: srv.URL, ClientID: "a b", Scope: "read write"}, "p:w&x", srv.Client(),
		newMetrics(prometheus.NewRegistry(), nil, "test"), slog.New(slog.DiscardHandler))
	tok, err := s.fetch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.value != "abc" || tok.exp.Sub(tok.got) != time.Minute {
		t.Errorf("token = %q expiring after %s, want abc after 1m (expires_in as a string is accepted)", tok.value, tok.exp.Sub(tok.got))
	}
	if gotUser != "a+b" || gotPass != "p%3Aw%26x" {
		t.Errorf("Basic user %q password %q, want both form-urlencoded", gotUser, gotPass)
	}
	if gotType != "application/x-www-form-urlencoded" || gotGrant != "client_credentials" || gotScope != "read write" {
		t.Errorf("content type %q, grant %q, scope %q", gotType, gotGrant, gotScope)
	}
}
