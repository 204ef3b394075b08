package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/jwt-sidecar/jwt-sidecar/test/grpctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// grpcUpstream is a real gRPC server (the standard health service and the
// echo service of test/grpctest) on 127.0.0.1 that records the metadata of
// every call it receives, so a test can prove what arrived and that a
// refused call never did.
type grpcUpstream struct {
	addr   string
	health *health.Server
	mu     sync.Mutex
	calls  []metadata.MD
}

func newGRPCUpstream(t *testing.T) *grpcUpstream {
	t.Helper()
	g := &grpcUpstream{health: health.NewServer()}
	record := func(ctx context.Context) {
		md, _ := metadata.FromIncomingContext(ctx)
		g.mu.Lock()
		g.calls = append(g.calls, md.Copy())
		g.mu.Unlock()
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(s, ss)
		}),
	)
	healthpb.RegisterHealthServer(srv, g.health)
	grpctest.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	g.addr = ln.Addr().String()
	return g
}

func (g *grpcUpstream) seen() []metadata.MD {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]metadata.MD(nil), g.calls...)
}

// h2cFront serves handler on 127.0.0.1 the way the sidecar's plain listener
// does: HTTP/1.1 and HTTP/2 with prior knowledge.
func h2cFront(t *testing.T, handler http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// grpcThrough is a health client that calls the upstream through the
// sidecar over h2c, with the token (if any) on every call.
func grpcThrough(t *testing.T, addr, token string) healthpb.HealthClient {
	t.Helper()
	return healthpb.NewHealthClient(grpcConn(t, addr, token))
}

// grpcConn is a client connection to addr over h2c that sends the token
// (if any) with every call and stream.
func grpcConn(t *testing.T, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return inv(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), m, req, reply, cc, o...)
		}), grpc.WithStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, m string, s grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return s(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), d, cc, m, o...)
		}))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// grpcHarness is the proxy, with the real verifier and metrics, in front of
// the gRPC upstream over h2c, served over h2c itself.
func grpcHarness(t *testing.T) (*harness, *grpcUpstream, string) {
	t.Helper()
	g := newGRPCUpstream(t)
	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.Upstream = &url.URL{Scheme: SchemeH2C, Host: g.addr}
	})
	return h, g, h2cFront(t, h.handler).Listener.Addr().String()
}

func TestGRPCUnaryThroughH2C(t *testing.T) {
	k := allKeys(t)
	h, g, addr := grpcHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := grpcThrough(t, addr, k.rsa.Sign(t, claims(issA))).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check with a valid token: %v", err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %v, want SERVING", res.GetStatus())
	}
	calls := g.seen()
	if len(calls) != 1 {
		t.Fatalf("upstream saw %d calls, want 1", len(calls))
	}
	md := calls[0]
	if got := md.Get("x-auth-subject"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("x-auth-subject metadata %q, want the verified sub", got)
	}
	if got := md.Get("authorization"); len(got) != 0 {
		t.Errorf("the token reached the upstream: %q", got)
	}
	if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": string(verifier.Allowed), "reason": ""}); got != 1 {
		t.Errorf("allowed count %v, want 1", got)
	}
}

// TestGRPCRefusals shows every kind of refusal reaching a gRPC client as
// the status it understands, counted as a refusal, with the upstream never
// called.
func TestGRPCRefusals(t *testing.T) {
	k := allKeys(t)
	valid := claims(issA)
	tests := []struct {
		name   string
		token  string
		code   codes.Code
		reason verifier.Reason
	}{
		{"no token", "", codes.Unauthenticated, verifier.Missing},
		{"expired", k.rsa.Sign(t, with(valid, "exp", base.Add(-time.Hour).Unix())), codes.Unauthenticated, verifier.Expired},
		{"unknown key", k.other.Sign(t, valid), codes.Unauthenticated, verifier.BadSignature},
		{"missing scope", k.rsa.Sign(t, with(valid, "scope", "write")), codes.PermissionDenied, verifier.InsufficientScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, g, addr := grpcHarness(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var trailer metadata.MD
			_, err := grpcThrough(t, addr, tt.token).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, tt.code)
			}
			if want := tt.reason.Description(); st.Message() != challengeSafe(want) {
				t.Errorf("message %q, want the RFC 6750 description %q", st.Message(), want)
			}
			if n := len(g.seen()); n != 0 {
				t.Errorf("upstream saw %d calls, want none", n)
			}
			// Trailers-only: the challenge arrives in the trailer, and a
			// missing scope is named (RFC 6750 §3.1).
			if tt.reason == verifier.InsufficientScope {
				if got := trailer.Get("www-authenticate"); len(got) != 1 || !strings.HasSuffix(got[0], `, scope="read"`) {
					t.Errorf("www-authenticate %q, want the challenge naming scope read", got)
				}
			}
			if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": string(tt.reason.Outcome()), "reason": string(tt.reason)}); got != 1 {
				t.Errorf("refusal count for %s: %v, want 1", tt.reason, got)
			}
			lines := logLines(t, h.logs)
			if len(lines) != 1 || lines[0]["msg"] != "request refused" || lines[0]["reason"] != string(tt.reason) {
				t.Errorf("log %v, want one refusal line with reason %s", lines, tt.reason)
			}
		})
	}
}

// TestGRPCServerStream shows a server stream flowing message by message:
// the client reads the first status, the upstream then changes it, and the
// client reads the change on the same stream.
func TestGRPCServerStream(t *testing.T) {
	k := allKeys(t)
	_, g, addr := grpcHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.health.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	stream, err := grpcThrough(t, addr, k.rsa.Sign(t, claims(issA))).Watch(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatalf("first message: %v", err)
	}
	if first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first status %v", first.GetStatus())
	}
	g.health.SetServingStatus("echo", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := stream.Recv()
	if err != nil {
		t.Fatalf("second message: %v", err)
	}
	if second.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("second status %v, want NOT_SERVING", second.GetStatus())
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v, want CANCELED", err)
	}
}

// TestGRPCUpstreamStatusInTrailers shows an upstream's own gRPC status, which
// lives in the response trailers, passing through the proxy unchanged.
func TestGRPCUpstreamStatusInTrailers(t *testing.T) {
	k := allKeys(t)
	_, _, addr := grpcHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := grpcThrough(t, addr, k.rsa.Sign(t, claims(issA))).Check(ctx, &healthpb.HealthCheckRequest{Service: "no-such-service"})
	if st := status.Convert(err); st.Code() != codes.NotFound {
		t.Fatalf("got %v, want the upstream's NOT_FOUND from its trailers", err)
	}
}

// TestGRPCUpstreamDown answers UNAVAILABLE when the h2c upstream cannot be
// reached, never a transport error the client cannot read.
func TestGRPCUpstreamDown(t *testing.T) {
	k := allKeys(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.Upstream = &url.URL{Scheme: SchemeH2C, Host: dead}
	})
	addr := h2cFront(t, h.handler).Listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = grpcThrough(t, addr, k.rsa.Sign(t, claims(issA))).Check(ctx, &healthpb.HealthCheckRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "the upstream could not be reached" {
		t.Fatalf("got %v, want UNAVAILABLE from the sidecar", err)
	}
}
