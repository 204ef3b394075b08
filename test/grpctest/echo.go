// Package grpctest is a small gRPC echo service for the tests and the load
// run: a unary call and a bidirectional stream, declared by hand (no
// generated code) with protobuf's StringValue as the message, so the codec,
// framing and transport are grpc-go's own.
package grpctest

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Full method names, as they appear in the HTTP/2 :path.
const (
	Service      = "jwtsidecar.test.Echo"
	UnaryMethod  = "/" + Service + "/Unary"
	StreamMethod = "/" + Service + "/Chat"
)

// Messages of Chat with a meaning: the server ends the stream with ABORTED
// when it reads Abort.
const Abort = "abort"

// CountTrailer is the trailer Chat sets: how many messages it echoed.
const CountTrailer = "echo-count"

// SubjectKey is the metadata key the server greets with: the sidecar's
// claim header for sub, as the tests and the load run configure it.
const SubjectKey = "x-auth-subject"

// Message is the message of every call.
type Message = wrapperspb.StringValue

// Echo is the service's implementation.
type Echo struct{}

// WhoAmI asks Unary what arrived instead of an echo.
const WhoAmI = "whoami"

// Unary answers the message it got; to WhoAmI it answers "sub=S auth=B":
// the subject metadata and whether an authorization entry arrived.
func (Echo) Unary(ctx context.Context, in *Message) (*Message, error) {
	if in.GetValue() == WhoAmI {
		md, _ := metadata.FromIncomingContext(ctx)
		return wrapperspb.String("sub=" + strings.Join(md.Get(SubjectKey), ",") +
			" auth=" + strconv.FormatBool(len(md.Get("authorization")) > 0)), nil
	}
	return wrapperspb.String(in.GetValue()), nil
}

// Chat greets first, before reading anything, with "hello " and the
// subject metadata; then echoes each message as it arrives; after the
// client half-closes, it sends "bye after N" and ends with OK and the
// echo-count trailer. Abort ends it early with ABORTED.
func (Echo) Chat(stream grpc.BidiStreamingServer[Message, Message]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if err := stream.Send(wrapperspb.String("hello " + strings.Join(md.Get(SubjectKey), ","))); err != nil {
		return err
	}
	n := 0
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			stream.SetTrailer(metadata.Pairs(CountTrailer, strconv.Itoa(n)))
			return stream.Send(wrapperspb.String("bye after " + strconv.Itoa(n)))
		}
		if err != nil {
			return err
		}
		if in.GetValue() == Abort {
			stream.SetTrailer(metadata.Pairs(CountTrailer, strconv.Itoa(n)))
			return status.Error(codes.Aborted, "aborted on request")
		}
		n++
		if err := stream.Send(wrapperspb.String(in.GetValue())); err != nil {
			return err
		}
	}
}

// service is what Register needs of an implementation.
type service interface {
	Unary(context.Context, *Message) (*Message, error)
	Chat(grpc.BidiStreamingServer[Message, Message]) error
}

var desc = grpc.ServiceDesc{
	ServiceName: Service,
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(Message)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				return srv.(service).Unary(ctx, req.(*Message))
			}
			if icpt == nil {
				return call(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: UnaryMethod}, call)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName: "Chat",
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(service).Chat(&grpc.GenericServerStream[Message, Message]{ServerStream: stream})
		},
		ServerStreams: true,
		ClientStreams: true,
	}},
}

// Register adds the echo service to s.
func Register(s grpc.ServiceRegistrar) { s.RegisterService(&desc, Echo{}) }

// Unary calls the unary method.
func Unary(ctx context.Context, cc grpc.ClientConnInterface, value string, opts ...grpc.CallOption) (string, error) {
	out := new(Message)
	if err := cc.Invoke(ctx, UnaryMethod, wrapperspb.String(value), out, opts...); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// Chat opens the bidirectional stream.
func Chat(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) (grpc.BidiStreamingClient[Message, Message], error) {
	s, err := cc.NewStream(ctx, &desc.Streams[0], StreamMethod, opts...)
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[Message, Message]{ClientStream: s}, nil
}
