package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// get polls url until it answers want with a body containing body.
func get(t *testing.T, url string, want int, body string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want && strings.Contains(string(b), body) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d %q within 10s (last error %v)", url, want, body, err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func TestServiceLifecycle(t *testing.T) {
	var ready atomic.Bool
	arrived, release := make(chan struct{}), make(chan struct{})
	backgroundDone := make(chan struct{})
	s := Service{
		Name:       "test",
		Log:        slog.New(slog.DiscardHandler),
		ListenAddr: proctest.FreeAddr(t),
		AdminAddr:  proctest.FreeAddr(t),
		Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			close(arrived)
			<-release
			io.WriteString(w, "done")
		})},
		Metrics: prometheus.NewRegistry(),
		Ready: func() error {
			if !ready.Load() {
				return errors.New("keys not loaded yet")
			}
			return nil
		},
		Background: func(ctx context.Context) error {
			<-ctx.Done()
			close(backgroundDone)
			return nil
		},
		ShutdownTimeout: 10 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()

	admin := "http://" + s.AdminAddr
	get(t, admin+"/healthz", http.StatusOK, "ok")
	get(t, admin+"/readyz", http.StatusServiceUnavailable, "keys not loaded yet")
	get(t, admin+"/metrics", http.StatusOK, "")
	ready.Store(true)
	get(t, admin+"/readyz", http.StatusOK, "ok")

	// A request in flight when the signal comes is finished, /readyz says
	// so meanwhile, and the background job stops only afterwards.
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.ListenAddr + "/")
		if err != nil {
			inflight <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- string(b)
	}()
	<-arrived
	cancel()
	get(t, admin+"/readyz", http.StatusServiceUnavailable, "shutting down")
	select {
	case <-backgroundDone:
		t.Fatal("the background job stopped before the drain ended")
	default:
	}
	close(release)
	if got := <-inflight; got != "done" {
		t.Errorf("in-flight request got %q, want done", got)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	<-backgroundDone
}

func TestServiceNamesTheBusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := Service{Name: "test", Log: slog.New(slog.DiscardHandler), ListenAddr: proctest.FreeAddr(t), AdminAddr: busy.Addr().String()}
	if err := s.Run(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "ADMIN_ADDR:") {
		t.Errorf("Run = %v, want an ADMIN_ADDR error", err)
	}
}

// TestServiceExtraListenerOnly: with NoMain the service serves only its
// extra listener (and the admin one), and its drain finishes a request in
// flight on the extra listener before Run returns.
func TestServiceExtraListenerOnly(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	main := proctest.FreeAddr(t)
	s := Service{
		Name:       "test",
		Log:        slog.New(slog.DiscardHandler),
		ListenAddr: main,
		AdminAddr:  proctest.FreeAddr(t),
		NoMain:     true,
		Extra: []Listener{{Var: "DECISION_ADDR", Addr: proctest.FreeAddr(t), Server: &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				close(arrived)
				<-release
				io.WriteString(w, "decided")
			}),
		}}},
		Metrics:         prometheus.NewRegistry(),
		Ready:           func() error { return nil },
		Background:      func(ctx context.Context) error { <-ctx.Done(); return nil },
		ShutdownTimeout: 10 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	get(t, "http://"+s.AdminAddr+"/readyz", http.StatusOK, "ok")
	if c, err := net.DialTimeout("tcp", main, time.Second); err == nil {
		c.Close()
		t.Errorf("LISTEN_ADDR %s accepts connections with NoMain", main)
	}
	answered := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.Extra[0].Addr + "/")
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- string(b)
	}()
	<-arrived
	cancel()
	close(release)
	if got := <-answered; got != "decided" {
		t.Errorf("in-flight request on the extra listener: %q, want decided", got)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestServiceNamesTheBusyExtraAddress: a busy extra address is named by
// its variable.
func TestServiceNamesTheBusyExtraAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := Service{
		Name: "test", Log: slog.New(slog.DiscardHandler), NoMain: true, AdminAddr: proctest.FreeAddr(t),
		Extra:   []Listener{{Var: "DECISION_ADDR", Addr: ln.Addr().String(), Server: &http.Server{}}},
		Metrics: prometheus.NewRegistry(), Ready: func() error { return nil },
		Background: func(ctx context.Context) error { <-ctx.Done(); return nil },
	}
	if err := s.Run(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "DECISION_ADDR: ") {
		t.Errorf("Run: %v, want an error naming DECISION_ADDR", err)
	}
}
