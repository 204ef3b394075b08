package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// front serves the proxy on a real listener with upstream as its upstream.
func front(t *testing.T, upstream *httptest.Server, adjust func(*testOptions)) (*httptest.Server, *harness) {
	t.Helper()
	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.Upstream = mustURL(t, upstream.URL)
		if adjust != nil {
			adjust(o)
		}
	})
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	return srv, h
}

// TestServerSentEvents shows that an event stream is flushed event by
// event: the client reads the first event while the upstream is still
// holding the second back.
func TestServerSentEvents(t *testing.T) {
	k := allKeys(t)
	second := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-second:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() {
		select {
		case <-second:
		default:
			close(second)
		}
	})
	srv, _ := front(t, up, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+k.rsa.Sign(t, claims(issA)))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	// If the proxy buffered, this read would block until ctx's deadline.
	if got := readEvent(t, br); got != "data: one" {
		t.Fatalf("first event = %q, want data: one", got)
	}
	close(second)
	if got := readEvent(t, br); got != "data: two" {
		t.Fatalf("second event = %q, want data: two", got)
	}
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
		t.Fatalf("event not terminated: %q, %v", blank, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// TestWebSocket upgrades through the proxy with a hand-written handshake and
// echoes bytes both ways over the hijacked connections.
func TestWebSocket(t *testing.T) {
	k := allKeys(t)
	gotSubject := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		gotSubject <- r.Header.Get("X-Auth-Subject")
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(conn, rw) // echo until the client closes
	}))
	t.Cleanup(up.Close)
	srv, h := front(t, up, nil)

	t.Run("authenticated", func(t *testing.T) {
		conn, br := dialUpgrade(t, srv, "Authorization: Bearer "+k.rsa.Sign(t, claims(issA))+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		if got := <-gotSubject; got != "alice" {
			t.Errorf("upstream X-Auth-Subject = %q, want alice", got)
		}
		for _, msg := range []string{"hello", strings.Repeat("z", 100<<10)} {
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatal(err)
			}
			echo := make([]byte, len(msg))
			if _, err := io.ReadFull(br, echo); err != nil {
				t.Fatal(err)
			}
			if string(echo) != msg {
				t.Errorf("echo of %d bytes differs", len(msg))
			}
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		before := len(h.upstream.requests())
		_, br := dialUpgrade(t, srv, "")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", resp.StatusCode)
		}
		select {
		case s := <-gotSubject:
			t.Errorf("upstream saw an unauthenticated upgrade (subject %q)", s)
		default:
		}
		if got := len(h.upstream.requests()); got != before {
			t.Errorf("upstream saw %d requests, want %d", got, before)
		}
	})
}

func dialUpgrade(t *testing.T, srv *httptest.Server, extra string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := "GET /ws HTTP/1.1\r\nHost: " + srv.Listener.Addr().String() + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// TestRequestBodyStreams shows a large body flows through without being
// buffered: the upstream reads the first part while the client has not yet
// written the rest.
func TestRequestBodyStreams(t *testing.T) {
	k := allKeys(t)
	const first, total = 1 << 20, 16 << 20
	gotFirst := make(chan struct{})
	type result struct {
		n   int64
		sum [32]byte
	}
	results := make(chan result, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hash := sha256.New()
		n, err := io.CopyN(hash, r.Body, first)
		if err != nil {
			t.Errorf("upstream read: %v", err)
			return
		}
		close(gotFirst)
		m, _ := io.Copy(hash, r.Body)
		var res result
		res.n = n + m
		copy(res.sum[:], hash.Sum(nil))
		results <- res
	}))
	t.Cleanup(up.Close)
	srv, _ := front(t, up, nil)

	body := make([]byte, total)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		if _, err := pw.Write(body[:first]); err != nil {
			pw.CloseWithError(err)
			return
		}
		select {
		case <-gotFirst:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(io.ErrUnexpectedEOF) // the proxy held the body back
			return
		}
		_, err := io.Copy(pw, bytes.NewReader(body[first:]))
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+k.rsa.Sign(t, claims(issA)))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	got := <-results
	if got.n != total || got.sum != sha256.Sum256(body) {
		t.Errorf("upstream read %d bytes (sum %x), want %d bytes (sum %x)", got.n, got.sum[:4], total, sha256.Sum256(body))
	}
}
