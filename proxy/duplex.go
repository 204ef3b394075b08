package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
)

// An HTTP/2 stream is full duplex: a gRPC server may end a bidirectional
// stream (status and trailers) while its client is still sending. The
// upstream transport then keeps reading the client's body to send it on,
// and ReverseProxy, closing the finished response, waits for that read:
// the status would reach the client only when the client itself gave up.
// So the inbound body of an HTTP/2 request is closed as soon as the
// upstream's response has ended: the client gets the status and trailers
// at once, and what it still sends is discarded, as when it talks to the
// server directly (RFC 9113 §8.1 lets a server answer before the request
// is complete).

// duplexKey carries the inbound body of an HTTP/2 request to the response.
type duplexKey struct{}

// fullDuplex remembers the body of each HTTP/2 request with one, for
// endWithResponse. HTTP/1.1 requests pass untouched.
func fullDuplex(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && r.Body != nil && r.Body != http.NoBody {
			r = r.WithContext(context.WithValue(r.Context(), duplexKey{}, r.Body))
		}
		next.ServeHTTP(w, r)
	})
}

// endWithResponse makes the end of res's body (EOF or an error) close the
// inbound body of the request it answers, when fullDuplex noted one.
func endWithResponse(res *http.Response) {
	if res.Request == nil || res.Request.ProtoMajor != 2 || res.StatusCode == http.StatusSwitchingProtocols {
		return
	}
	if in, ok := res.Request.Context().Value(duplexKey{}).(io.Closer); ok {
		res.Body = &closeOnEnd{ReadCloser: res.Body, in: in}
	}
}

// closeOnEnd is a response body that closes in when it ends.
type closeOnEnd struct {
	io.ReadCloser
	in   io.Closer
	once sync.Once
}

func (b *closeOnEnd) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *closeOnEnd) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

func (b *closeOnEnd) end() { b.once.Do(func() { _ = b.in.Close() }) }
