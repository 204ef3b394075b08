package main

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzClientEndpoints feeds arbitrary Authorization headers and form bodies
// to /token, /introspect and /revoke, which anyone who can reach the issuer
// may call. Whatever arrives: no panic, only the statuses RFC 6749, 7009 and
// 7662 allow, a JSON body unless /revoke succeeded, and /introspect calls a
// token active only when it is the one real token of the seeds.
func FuzzClientEndpoints(f *testing.F) {
	cfg, err := parseConfig(nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		f.Fatal(err)
	}
	s, err := newServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	h := s.routes()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("demo:demo-secret"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, form(http.MethodPost, "/token", basic, "grant_type=client_credentials"))
	var issued struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &issued); err != nil || issued.AccessToken == "" {
		f.Fatalf("seed token: %d %s", rec.Code, rec.Body)
	}
	f.Add(uint8(0), basic, "grant_type=client_credentials&scope=read")
	f.Add(uint8(0), "", "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=e30.e30.")
	f.Add(uint8(1), basic, "token="+issued.AccessToken)
	f.Add(uint8(1), "Basic ZGVtbzo=", "token=x&client_id=demo&client_secret=demo-secret")
	f.Add(uint8(2), basic, "token="+issued.AccessToken+"&token_type_hint=access_token")
	f.Add(uint8(2), "Basic %%%", "token=%zz")
	paths := []string{"/token", "/introspect", "/revoke"}
	f.Fuzz(func(t *testing.T, which uint8, auth, body string) {
		path := paths[int(which)%len(paths)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, form(http.MethodPost, path, auth, body))
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("POST %s: status %d", path, rec.Code)
		}
		if path == "/revoke" && rec.Code == http.StatusOK {
			return // RFC 7009 §2.2: 200 with an empty body
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("POST %s: %d with a body that is not JSON: %q", path, rec.Code, rec.Body)
		}
		if path == "/introspect" && answer["active"] == true {
			if v, _ := url.ParseQuery(body); v.Get("token") != issued.AccessToken {
				t.Fatalf("POST /introspect called %q active", v.Get("token"))
			}
		}
	})
}

func form(method, path, auth, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}
