package verifier_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// The sidecar's client credentials. The ':' and '%' only survive HTTP Basic
// if both are form-urlencoded before base64 (RFC 6749 §2.3.1), which the
// token service below insists on.
const (
	clientID     = "sidecar:one"
	clientSecret = "s3cr%t +/é"
)

// tokenService is a real RFC 7662 endpoint on 127.0.0.1. It authenticates
// its caller with HTTP Basic, reads the form, answers {"active":false} for
// any token it does not know, and counts its calls. A test can revoke a
// token, hold calls, or replace the answer with a status or a raw body.
type tokenService struct {
	*httptest.Server
	calls atomic.Int64

	mu        sync.Mutex
	answers   map[string]map[string]any // token → claims of an active token
	anyActive map[string]any            // when set, every token is active with these claims
	status    int                       // when set, every answer has this status
	raw       []byte                    // when set, every 200 answer is this body
	block     chan struct{}             // when set, calls wait on it
	lastForm  url.Values
	problems  []string // protocol violations by the caller
}

func newTokenService(t testing.TB) *tokenService {
	t.Helper()
	ts := &tokenService{answers: map[string]map[string]any{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, p := range ts.problems {
			t.Errorf("token service: %s", p)
		}
	})
	return ts
}

func (ts *tokenService) serve(w http.ResponseWriter, r *http.Request) {
	ts.calls.Add(1)
	ts.mu.Lock()
	block, status, raw := ts.block, ts.status, ts.raw
	ts.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	// RFC 7662 §2.1: POST, a form, and an authenticated caller.
	user, pass, ok := r.BasicAuth()
	id, errID := url.QueryUnescape(user)
	secret, errSecret := url.QueryUnescape(pass)
	if !ok || errID != nil || errSecret != nil || id != clientID || secret != clientSecret {
		w.Header().Set("WWW-Authenticate", `Basic realm="token-service"`)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		ts.problem("got %s with Content-Type %q, want a POSTed form", r.Method, r.Header.Get("Content-Type"))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if err := r.ParseForm(); err != nil || len(r.PostForm["token"]) != 1 || r.PostForm.Get("token_type_hint") != "access_token" || len(r.URL.RawQuery) > 0 {
		ts.problem("bad form %v (query %q, err %v)", r.PostForm, r.URL.RawQuery, err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ts.mu.Lock()
	ts.lastForm = r.PostForm
	claims, known := ts.answers[r.PostForm.Get("token")]
	if ts.anyActive != nil {
		claims, known = ts.anyActive, true
	}
	ts.mu.Unlock()
	if status != 0 {
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":"server_error"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if raw != nil {
		w.Write(raw)
		return
	}
	answer := map[string]any{"active": false}
	if known {
		answer = map[string]any{"active": true}
		for k, v := range claims {
			answer[k] = v
		}
	}
	json.NewEncoder(w).Encode(answer)
}

func (ts *tokenService) problem(format string, args ...any) {
	b, _ := json.Marshal([]any{format, args})
	ts.mu.Lock()
	ts.problems = append(ts.problems, string(b))
	ts.mu.Unlock()
}

// activate makes token active with claims.
func (ts *tokenService) activate(token string, claims map[string]any) {
	ts.mu.Lock()
	ts.answers[token] = claims
	ts.mu.Unlock()
}

// revoke makes token inactive from now on (RFC 7009).
func (ts *tokenService) revoke(token string) {
	ts.mu.Lock()
	delete(ts.answers, token)
	ts.mu.Unlock()
}

func (ts *tokenService) set(f func(ts *tokenService)) {
	ts.mu.Lock()
	f(ts)
	ts.mu.Unlock()
}

func (ts *tokenService) form() url.Values {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.lastForm
}

// activeClaims is what the token service says about a valid token at base:
// RFC 7662 §2.2 members plus a realm claim.
func activeClaims() map[string]any {
	return map[string]any{
		"sub":          "alice",
		"scope":        "read write",
		"client_id":    "app",
		"iss":          issA,
		"aud":          aud,
		"exp":          base.Add(10 * time.Minute).Unix(),
		"iat":          base.Add(-time.Minute).Unix(),
		"token_type":   "Bearer",
		"jti":          "jti-1",
		"realm_access": map[string]any{"roles": []string{"admin", "user"}},
	}
}

// closedURL is an http URL on 127.0.0.1 where nothing listens.
func closedURL(t testing.TB) string {
	t.Helper()
	return "http://" + proctest.FreeAddr(t) + "/introspect"
}

// recordingUpstream counts the requests it receives and keeps the last
// one's headers, so that a test proves what was, or was not, forwarded.
type recordingUpstream struct {
	*httptest.Server
	n      atomic.Int64
	mu     sync.Mutex
	header http.Header
}

func newRecordingUpstream(t testing.TB) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.n.Add(1)
		u.mu.Lock()
		u.header = r.Header.Clone()
		u.mu.Unlock()
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.header
}

// introspection is the whole introspection-mode sidecar of a test: the real
// Introspector behind the real proxy, served on 127.0.0.1, with its metrics,
// its logs, a token service, an upstream and a clock the test moves.
type introspection struct {
	ts    *tokenService
	up    *recordingUpstream
	in    *verifier.Introspector
	srv   *httptest.Server
	reg   *prometheus.Registry
	logs  *proctest.Buffer
	clock atomic.Int64 // UnixNano
}

// newIntrospection builds the sidecar with issuer A, audience api, scope
// read required, 30 s skew, exp required, and claim headers for sub, scope
// and client_id. mutate adjusts the options.
func newIntrospection(t testing.TB, mutate func(*verifier.IntrospectionOptions)) *introspection {
	t.Helper()
	f := &introspection{ts: newTokenService(t), up: newRecordingUpstream(t), reg: prometheus.NewRegistry(), logs: &proctest.Buffer{}}
	f.clock.Store(base.UnixNano())
	m := metrics.New(f.reg)
	m.IntrospectionMode()
	o := verifier.IntrospectionOptions{
		URL:            f.ts.URL + "/introspect",
		ClientID:       clientID,
		ClientSecret:   clientSecret,
		Timeout:        5 * time.Second,
		Issuers:        []string{issA},
		Audiences:      []string{aud},
		ClockSkew:      30 * time.Second,
		RequireExp:     true,
		RequiredScopes: []string{"read"},
		Recorder:       m,
		Now:            func() time.Time { return time.Unix(0, f.clock.Load()) },
	}
	if mutate != nil {
		mutate(&o)
	}
	in, err := verifier.NewIntrospector(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.CloseIdleConnections)
	f.in = in
	upURL, _ := url.Parse(f.up.URL)
	headers, err := config.ParseClaimHeaders("sub=X-Auth-Subject,scope=X-Auth-Scope,client_id=X-Auth-Client,realm_access.roles=X-Auth-Roles")
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{
		Upstream:      upURL,
		Verifier:      in,
		Recorder:      m,
		Logger:        slog.New(slog.NewJSONHandler(f.logs, nil)),
		Mode:          metrics.ModeIntrospection,
		ClaimHeaders:  headers,
		PayloadHeader: "X-Auth-Payload",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(p.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func (f *introspection) advance(d time.Duration) { f.clock.Add(int64(d)) }

// response is one answer of the sidecar, body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// get sends GET /api through the sidecar with token as a bearer token
// (none when empty) and extra headers.
func (f *introspection) get(t testing.TB, token string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/api", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// metric reads one counter or histogram count of the sidecar's registry;
// labels are name, value pairs that must all match.
func (f *introspection) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
