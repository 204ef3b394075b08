package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/jwt-sidecar/jwt-sidecar/test/grpctest"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// TestGRPCThroughBinary runs a real grpc-go client and server through the
// built binary: its plain listener over h2c, UPSTREAM_URL=h2c://. A unary
// call and a bidirectional stream pass with the claim as metadata and
// without the token; calls and streams without a token are refused as
// UNAUTHENTICATED and never reach the server.
func TestGRPCThroughBinary(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	var calls atomic.Int64
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			calls.Add(1)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			calls.Add(1)
			return h(s, ss)
		}),
	)
	grpctest.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	s := startSidecar(t, map[string]string{"UPSTREAM_URL": "h2c://" + ln.Addr().String(), "JWKS_URLS": is.URL, "CLAIMS_TO_HEADERS": "sub=X-Auth-Subject"})
	s.waitFor(t, "/readyz", http.StatusOK)
	cc, err := grpc.NewClient("passthrough:///"+s.listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token(t, k))

	if out, err := grpctest.Unary(authed, cc, grpctest.WhoAmI); err != nil || out != "sub=alice auth=false" {
		t.Fatalf("unary: %q, %v; want the subject as metadata and no token", out, err)
	}

	stream, err := grpctest.Chat(authed, cc)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetValue() != "hello alice" {
		t.Fatalf("greeting %v, %v", m, err)
	}
	for _, msg := range []string{"one", "two"} {
		if err := stream.Send(wrapperspb.String(msg)); err != nil {
			t.Fatal(err)
		}
		if m, err := stream.Recv(); err != nil || m.GetValue() != msg {
			t.Fatalf("echo of %q: %v, %v", msg, m, err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetValue() != "bye after 2" {
		t.Fatalf("after half-close: %v, %v", m, err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	if got := stream.Trailer().Get(grpctest.CountTrailer); len(got) != 1 || got[0] != "2" {
		t.Errorf("trailer %q, want 2", got)
	}

	before := calls.Load()
	if _, err := grpctest.Unary(ctx, cc, "x"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unary without a token: %v, want UNAUTHENTICATED", err)
	}
	if refused, err := grpctest.Chat(ctx, cc); err == nil {
		_ = refused.Send(wrapperspb.String("one"))
		_, err = refused.Recv()
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("stream without a token: %v, want UNAUTHENTICATED", err)
		}
	} else if status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without a token: %v", err)
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("the server saw %d refused calls", n)
	}
}
