package relay

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"
)

// echo answers each POST with its body, and GET with "ok".
func echo(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			_, _ = io.Copy(w, r.Body)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func listen(t *testing.T, target string, rtt time.Duration) *Relay {
	t.Helper()
	r, err := Listen("127.0.0.1:0", target, rtt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestDelayPerExchange: on one kept-alive connection every request and
// response pays the round trip, and the first also pays the handshake.
// Durations are checked only as lower bounds: a loaded machine can make
// them longer, never shorter.
func TestDelayPerExchange(t *testing.T) {
	const rtt = 30 * time.Millisecond
	srv := echo(t)
	r := listen(t, srv.Listener.Addr().String(), rtt)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)

	for i := range 4 {
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		req, err := http.NewRequest(http.MethodGet, "http://"+r.Addr()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req = req.WithContext(httptrace.WithClientTrace(t.Context(), trace))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || string(body) != "ok" {
			t.Fatalf("request %d: body %q, %v", i, body, err)
		}
		want := rtt
		if i == 0 {
			want = 2 * rtt // the handshake and the exchange
		}
		if took < want {
			t.Errorf("request %d (reused connection %t) took %s, want at least %s", i, reused, took, want)
		}
		if i > 0 && !reused {
			t.Errorf("request %d did not reuse the connection: the test measures per-exchange delay", i)
		}
	}
}

// TestBytesIntact: a body larger than many chunks arrives whole and in
// order through the delay lines, both ways.
func TestBytesIntact(t *testing.T) {
	srv := echo(t)
	r := listen(t, srv.Listener.Addr().String(), 2*time.Millisecond)
	body := make([]byte, 3<<20)
	_, _ = rand.Read(body)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Post("http://"+r.Addr()+"/", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Errorf("got %d bytes back, want the %d sent, unchanged", len(got), len(body))
	}
}

// TestTargetDown: with nothing at the target the client's connection is
// closed (its request fails), as a refused connection would end it.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := listen(t, dead, 0)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + r.Addr() + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d through a relay to a closed port, want an error", resp.StatusCode)
	}
}

// TestCloseCutsConnections: Close returns with a connection still open,
// and the client sees it end.
func TestCloseCutsConnections(t *testing.T) {
	srv := echo(t)
	r, err := Listen("127.0.0.1:0", srv.Listener.Addr().String(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	r.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("after Close the connection did not end cleanly: %v", err)
	}
}

func TestNegativeRTT(t *testing.T) {
	if _, err := Listen("127.0.0.1:0", "127.0.0.1:1", -time.Millisecond); err == nil {
		t.Error("a negative round trip was accepted")
	}
}
