package proxy

import (
	"math/rand/v2"
	"net/http"
	"unsafe"
)

// RequestIDHeader carries the request ID: kept from the client when well
// formed, otherwise generated; forwarded to the upstream, returned to the
// client and written in every log line about the request.
const RequestIDHeader = "X-Request-Id"

// MaxRequestIDLen bounds a client's request ID: longer ones are replaced,
// so a client cannot make every log line about its requests huge.
const MaxRequestIDLen = 128

// validRequestID reports whether a client's ID may be kept: 1 to
// MaxRequestIDLen bytes of letters, digits and - _ . : + / = @, which covers
// UUIDs, W3C trace IDs, base64 and the IDs of common proxies (nginx's
// $request_id, Envoy's x-request-id, Heroku's) and excludes anything that
// could break a log line or a header (spaces, quotes, control bytes).
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}

// generatedID is a request ID and the header value slice that holds it, in
// one allocation: the string points into hex, and values[0] is that string.
type generatedID struct {
	values [1]string
	hex    [32]byte
}

// newRequestID returns a header value holding 128 random bits as 32
// lowercase hex digits (the shape of a W3C trace ID). math/rand/v2's
// runtime source is per-thread and lock free: IDs need to be unique, not
// secret, so crypto/rand would cost more for nothing.
func newRequestID() []string {
	g := new(generatedID)
	for half := range 2 {
		v := rand.Uint64()
		for i := range 16 {
			g.hex[half*16+i] = hexDigits[v>>(60-4*i)&0xf]
		}
	}
	// The bytes are never written again, so the string is immutable as Go
	// requires.
	g.values[0] = unsafe.String(&g.hex[0], len(g.hex))
	return g.values[:]
}

// requestID gives every request an ID before anything else runs: the
// client's when it is one well-formed header line, a new one otherwise. It
// is set on the inbound request (ReverseProxy copies it to the upstream's)
// and on the response, refusals included. A valid ID costs no allocation;
// a generated one costs one.
func (p *Proxy) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header[RequestIDHeader]
		if len(id) != 1 || !validRequestID(id[0]) {
			id = newRequestID()
			r.Header[RequestIDHeader] = id
		}
		w.Header()[RequestIDHeader] = id
		next.ServeHTTP(w, r)
	})
}

// requestIDOf is r's request ID, set by the requestID middleware; empty when
// r did not pass through it (Explain).
func requestIDOf(r *http.Request) string {
	if id := r.Header[RequestIDHeader]; len(id) > 0 {
		return id[0]
	}
	return ""
}

// dropUpstreamRequestID removes the upstream's X-Request-Id from its
// response: the client already has the sidecar's in the response headers,
// and ReverseProxy adds upstream headers to those instead of replacing
// them, so an echoing upstream would otherwise send it twice.
func dropUpstreamRequestID(res *http.Response) error {
	delete(res.Header, RequestIDHeader)
	return nil
}
