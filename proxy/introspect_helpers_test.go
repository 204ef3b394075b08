package proxy

import (
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
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

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
	ts    *jwttest.TokenService
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
	f := &introspection{ts: jwttest.NewTokenService(t), up: newRecordingUpstream(t), reg: prometheus.NewRegistry(), logs: &proctest.Buffer{}}
	f.clock.Store(base.UnixNano())
	m := testMetrics(f.reg)
	m.IntrospectionMode()
	o := verifier.IntrospectionOptions{
		URL:            f.ts.URL + "/introspect",
		ClientID:       jwttest.IntrospectionClientID,
		ClientSecret:   jwttest.IntrospectionClientSecret,
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
	p, err := testOptions{
		Options: Options{
			Upstream: upURL,
			Recorder: m,
			Logger:   slog.New(slog.NewJSONHandler(f.logs, nil)),
		},
		Verifier:      in,
		Mode:          verifier.ModeIntrospection,
		ClaimHeaders:  headers,
		PayloadHeader: "X-Auth-Payload",
	}.build()
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
