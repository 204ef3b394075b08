package proxy

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/jwt-sidecar/jwt-sidecar/test/grpctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// recvValue reads one message of a stream, failing the test otherwise.
func recvValue(t *testing.T, s grpc.BidiStreamingClient[grpctest.Message, grpctest.Message]) string {
	t.Helper()
	m, err := s.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m.GetValue()
}

// TestGRPCBidiStream runs a bidirectional stream through the sidecar over
// h2c both ways: the server speaks first (with the subject it got as claim
// metadata), each message is echoed before the next is sent (so neither
// direction is buffered), the client half-closes and still reads the
// server's last message, and the status and trailers arrive.
func TestGRPCBidiStream(t *testing.T) {
	k := allKeys(t)
	h, g, addr := grpcHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := grpctest.Chat(ctx, grpcConn(t, addr, k.rsa.Sign(t, claims(issA))))
	if err != nil {
		t.Fatal(err)
	}
	// Before the client has sent anything: the greeting shows the response
	// flowing first and the claim metadata the server saw.
	if got := recvValue(t, stream); got != "hello alice" {
		t.Fatalf("greeting %q, want hello alice", got)
	}
	for _, msg := range []string{"one", "two", string(make([]byte, 100<<10))} {
		if err := stream.Send(wrapperspb.String(msg)); err != nil {
			t.Fatalf("send: %v", err)
		}
		// Blocks until the deadline if the proxy held either direction.
		if got := recvValue(t, stream); got != msg {
			t.Fatalf("echo of %d bytes: got %d bytes", len(msg), len(got))
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if got := recvValue(t, stream); got != "bye after 3" {
		t.Errorf("after half-close %q, want bye after 3", got)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v, want io.EOF (status OK)", err)
	}
	if got := stream.Trailer().Get(grpctest.CountTrailer); len(got) != 1 || got[0] != "3" {
		t.Errorf("trailer %s = %q, want 3", grpctest.CountTrailer, got)
	}
	calls := g.seen()
	if len(calls) != 1 {
		t.Fatalf("upstream saw %d calls, want 1", len(calls))
	}
	if got := calls[0].Get("x-auth-subject"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("x-auth-subject %q, want alice", got)
	}
	if got := calls[0].Get("authorization"); len(got) != 0 {
		t.Errorf("the token reached the upstream: %q", got)
	}
	if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": string(verifier.Allowed), "reason": ""}); got != 1 {
		t.Errorf("allowed count %v, want 1", got)
	}
}

// TestGRPCBidiStreamStatus ends a stream with the server's own error
// mid-way: its status and trailers, sent after messages, pass through.
func TestGRPCBidiStreamStatus(t *testing.T) {
	k := allKeys(t)
	_, _, addr := grpcHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := grpctest.Chat(ctx, grpcConn(t, addr, k.rsa.Sign(t, claims(issA))))
	if err != nil {
		t.Fatal(err)
	}
	recvValue(t, stream)
	for _, msg := range []string{"one", grpctest.Abort} {
		if err := stream.Send(wrapperspb.String(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if got := recvValue(t, stream); got != "one" {
		t.Fatalf("echo %q", got)
	}
	_, err = stream.Recv()
	if st := status.Convert(err); st.Code() != codes.Aborted || st.Message() != "aborted on request" {
		t.Fatalf("got %v, want the server's ABORTED", err)
	}
	if got := stream.Trailer().Get(grpctest.CountTrailer); len(got) != 1 || got[0] != "1" {
		t.Errorf("trailer %s = %q, want 1", grpctest.CountTrailer, got)
	}
}

// TestGRPCBidiStreamRefused opens bidirectional streams without a valid
// token: the client gets UNAUTHENTICATED as the stream's status with no
// message, whatever it sent, and the server never sees the stream.
func TestGRPCBidiStreamRefused(t *testing.T) {
	k := allKeys(t)
	for _, tt := range []struct {
		name   string
		token  string
		reason verifier.Reason
	}{
		{"no token", "", verifier.Missing},
		{"expired", k.rsa.Sign(t, with(claims(issA), "exp", base.Add(-time.Hour).Unix())), verifier.Expired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, g, addr := grpcHarness(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := grpctest.Chat(ctx, grpcConn(t, addr, tt.token))
			if err == nil {
				// The refusal may come before or after the client's first
				// message; either way no message comes back.
				_ = stream.Send(wrapperspb.String("one"))
				_, err = stream.Recv()
			}
			st := status.Convert(err)
			if st.Code() != codes.Unauthenticated || st.Message() != challengeSafe(tt.reason.Description()) {
				t.Fatalf("got %v, want UNAUTHENTICATED: %s", err, tt.reason.Description())
			}
			var hdr metadata.MD
			if stream != nil {
				hdr, _ = stream.Header()
			}
			if len(hdr.Get("x-auth-subject")) != 0 {
				t.Errorf("response header metadata %v", hdr)
			}
			if n := len(g.seen()); n != 0 {
				t.Errorf("upstream saw %d streams, want none", n)
			}
			if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": string(tt.reason.Outcome()), "reason": string(tt.reason)}); got != 1 {
				t.Errorf("refusal count %v, want 1", got)
			}
		})
	}
}
