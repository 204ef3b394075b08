package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// listServer serves a list document with an ETag and answers 304 to a
// matching If-None-Match, like the dev issuer; fail makes it answer 503.
type listServer struct {
	mu       sync.Mutex
	body     []byte
	fail     bool
	requests []string // the If-None-Match of each request ("" when absent)
}

func (ls *listServer) set(doc Document) {
	b, _ := json.Marshal(doc)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.body = b
}

func (ls *listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.requests = append(ls.requests, r.Header.Get("If-None-Match"))
	if ls.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	sum := sha256.Sum256(ls.body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(ls.body)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder keeps what the store reported.
type recorder struct {
	mu      sync.Mutex
	fetches []string // source/result
	entries map[string][2]int
	logouts []string
}

func (r *recorder) Fetch(source, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetches = append(r.fetches, result)
}

func (r *recorder) Loaded(source string, tokens, subjects int, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[string][2]int{}
	}
	r.entries[source] = [2]int{tokens, subjects}
}

func (r *recorder) Logout(result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logouts = append(r.logouts, result)
}

func tokenDoc(jtis ...string) Document {
	doc := Document{Version: Version}
	for _, j := range jtis {
		doc.Tokens = append(doc.Tokens, TokenEntry{Issuer: "https://id", JTI: j, Expiry: NumericDate{t0.Add(time.Hour)}})
	}
	return doc
}

func TestURLSourceConditionalRequests(t *testing.T) {
	ls := &listServer{}
	ls.set(tokenDoc("a"))
	srv := httptest.NewServer(ls)
	defer srv.Close()
	clock := &fakeClock{now: t0}
	rec := &recorder{}
	s, err := New(Options{URL: srv.URL + "/revocations", Now: clock.Now, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready() {
		t.Fatal("ready before any load")
	}
	if s.Revoked("https://id", "a", "", t0) {
		t.Fatal("revoked before any load")
	}
	ctx := t.Context()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() || !s.Revoked("https://id", "a", "", t0) || s.Revoked("https://id", "b", "", t0) {
		t.Fatal("after the first fetch: a must be revoked, b not")
	}
	clock.Add(10 * time.Second)
	if err := s.Refresh(ctx); err != nil { // unchanged: 304
		t.Fatal(err)
	}
	ls.set(tokenDoc("a", "b"))
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Revoked("https://id", "b", "", t0) {
		t.Error("b not revoked after the list changed")
	}
	if ls.requests[0] != "" || ls.requests[1] == "" || ls.requests[2] != ls.requests[1] {
		t.Errorf("If-None-Match sent = %q: none first, then the ETag", ls.requests)
	}
	if want := []string{FetchOK, FetchNotModified, FetchOK}; !slices.Equal(rec.fetches, want) {
		t.Errorf("fetch results = %v, want %v", rec.fetches, want)
	}
	if got := rec.entries[srv.URL+"/revocations"]; got != [2]int{2, 0} {
		t.Errorf("recorded entries = %v, want 2 tokens", got)
	}
}

// TestURLSourceOutage: a failing or garbage fetch keeps the last good list;
// the age grows until the source is stale, and a good fetch makes it fresh.
func TestURLSourceOutage(t *testing.T) {
	ls := &listServer{}
	ls.set(tokenDoc("a"))
	srv := httptest.NewServer(ls)
	defer srv.Close()
	clock := &fakeClock{now: t0}
	rec := &recorder{}
	s, err := New(Options{URL: srv.URL, Now: clock.Now, Recorder: rec, RefreshInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	ls.mu.Lock()
	ls.fail = true
	ls.mu.Unlock()
	clock.Add(30 * time.Second)
	if err := s.Refresh(ctx); err == nil {
		t.Fatal("a 503 is no error")
	}
	st := s.Status()[0]
	if !s.Revoked("https://id", "a", "", t0) || !s.Ready() {
		t.Error("a failed fetch dropped the list or readiness")
	}
	if st.Age != 30*time.Second || st.Stale || st.ConsecutiveErrors != 1 || st.LastError == "" {
		t.Errorf("status after one failure = %+v", st)
	}
	clock.Add(31 * time.Second) // past the default 6 intervals
	_ = s.Refresh(ctx)
	if st := s.Status()[0]; !st.Stale {
		t.Errorf("status after 61s without success = %+v, want stale", st)
	}
	if !s.Revoked("https://id", "a", "", t0) || !s.Ready() {
		t.Error("a stale list stopped serving or made the store unready")
	}

	// Garbage is no better than an outage.
	ls.mu.Lock()
	ls.fail = false
	ls.body = []byte(`{"version":1,"tokens":[{"iss":"https://id"}]}`)
	ls.mu.Unlock()
	if err := s.Refresh(ctx); err == nil {
		t.Fatal("an invalid list is no error")
	}
	if !s.Revoked("https://id", "a", "", t0) {
		t.Error("an invalid list replaced the good one")
	}
	ls.set(tokenDoc("c"))
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status()[0]; st.Stale || st.Age != 0 || !s.Revoked("https://id", "c", "", t0) || s.Revoked("https://id", "a", "", t0) {
		t.Errorf("after recovery: %+v", st)
	}
	if want := []string{FetchOK, FetchError, FetchError, FetchInvalid, FetchOK}; !slices.Equal(rec.fetches, want) {
		t.Errorf("fetch results = %v, want %v", rec.fetches, want)
	}
}

// TestURLSourceRestart: with a cache dir, a store started while the list
// server is down serves the last list, with its real age, and its first
// request is conditional on the cached ETag.
func TestURLSourceRestart(t *testing.T) {
	ls := &listServer{}
	ls.set(tokenDoc("a"))
	srv := httptest.NewServer(ls)
	defer srv.Close()
	dir := t.TempDir()
	clock := &fakeClock{now: t0}
	first, err := New(Options{URL: srv.URL, CacheDir: dir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}

	ls.mu.Lock()
	ls.fail = true
	ls.mu.Unlock()
	clock.Add(2 * time.Minute)
	rec := &recorder{}
	second, err := New(Options{URL: srv.URL, CacheDir: dir, Now: clock.Now, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !second.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the cached list was not loaded")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if !second.Revoked("https://id", "a", "", t0) {
		t.Error("the cached list does not revoke a")
	}
	if st := second.Status()[0]; st.Age != 2*time.Minute || !st.Stale {
		t.Errorf("status from the cache = %+v, want the age of the fetch (2m), stale", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	if rec.fetches[0] != FetchFromDisk {
		t.Errorf("first result = %v, want from_disk", rec.fetches)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if last := ls.requests[len(ls.requests)-1]; last == "" {
		t.Error("the request after a restart was not conditional on the cached ETag")
	}
}

func TestFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	write := func(doc Document, mod time.Time) {
		b, _ := json.Marshal(doc)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	clock := &fakeClock{now: t0}
	rec := &recorder{}
	s, err := New(Options{File: path, Now: clock.Now, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(t.Context()); err == nil || s.Ready() {
		t.Fatal("a missing file loaded")
	}
	write(tokenDoc("a"), t0)
	if err := s.Refresh(t.Context()); err != nil || !s.Revoked("https://id", "a", "", t0) {
		t.Fatalf("first read: %v", err)
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	write(tokenDoc("b"), t0.Add(time.Second))
	if err := s.Refresh(t.Context()); err != nil || !s.Revoked("https://id", "b", "", t0) || s.Revoked("https://id", "a", "", t0) {
		t.Fatalf("after the change: %v", err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(t.Context()); err == nil || !s.Revoked("https://id", "b", "", t0) {
		t.Errorf("a broken file replaced the list: %v", err)
	}
	if want := []string{FetchError, FetchOK, FetchNotModified, FetchOK, FetchInvalid}; !slices.Equal(rec.fetches, want) {
		t.Errorf("fetch results = %v, want %v", rec.fetches, want)
	}
}

// TestFileAndURL: both sources count; each one's list replaces only its own.
func TestFileAndURL(t *testing.T) {
	ls := &listServer{}
	ls.set(tokenDoc("from-url"))
	srv := httptest.NewServer(ls)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "list.json")
	b, _ := json.Marshal(tokenDoc("from-file"))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{URL: srv.URL, File: path, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, jti := range []string{"from-url", "from-file"} {
		if !s.Revoked("https://id", jti, "", t0) {
			t.Errorf("%s not revoked", jti)
		}
	}
	if n := len(s.Status()); n != 2 {
		t.Errorf("%d sources, want 2", n)
	}
}

func TestNewRefusesBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x/list", "/relative", "http://"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// TestRunPolls: Run refetches every interval by itself.
func TestRunPolls(t *testing.T) {
	ls := &listServer{}
	ls.set(tokenDoc())
	srv := httptest.NewServer(ls)
	defer srv.Close()
	s, err := New(Options{URL: srv.URL, RefreshInterval: 20 * time.Millisecond, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	ls.set(tokenDoc("late"))
	deadline := time.Now().Add(5 * time.Second)
	for !s.Revoked("https://id", "late", "", t0) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not pick up the new list")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func ExampleStore_Revoked() {
	s, _ := New(Options{})
	s.AddSubject("https://id.example", "alice", time.Unix(1767225600, 0), time.Unix(1767226200, 0))
	fmt.Println(s.Revoked("https://id.example", "j1", "alice", time.Unix(1767225599, 0)))
	fmt.Println(s.Revoked("https://id.example", "j2", "alice", time.Unix(1767225600, 0)))
	// Output:
	// true
	// false
}
