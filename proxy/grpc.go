package proxy

import (
	"net/http"
	"strconv"
	"strings"
)

// gRPC status codes (grpc/grpc doc/statuscodes.md) that the sidecar answers
// with itself.
const (
	grpcDeadlineExceeded = 4
	grpcPermissionDenied = 7
	grpcInternal         = 13
	grpcUnavailable      = 14
	grpcUnauthenticated  = 16
)

var grpcContentType = []string{"application/grpc"}

// grpcAnswer is the trailers-only form of a refusal: what a gRPC client
// understands where an HTTP client reads a status and a JSON body. It is
// built once with the refusal it mirrors, so a gRPC refusal costs what an
// HTTP one costs.
type grpcAnswer struct {
	status  []string // grpc-status
	message []string // grpc-message, percent-encoded
}

// newGRPCAnswer maps an HTTP refusal status to its gRPC status: 401 is
// UNAUTHENTICATED, 403 PERMISSION_DENIED, 502 and 503 UNAVAILABLE (the
// client may retry), 504 DEADLINE_EXCEEDED, anything else INTERNAL. The
// message is the description the RFC 6750 body carries.
func newGRPCAnswer(status int, desc string) grpcAnswer {
	code := grpcInternal
	switch status {
	case http.StatusUnauthorized:
		code = grpcUnauthenticated
	case http.StatusForbidden:
		code = grpcPermissionDenied
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		code = grpcUnavailable
	case http.StatusGatewayTimeout:
		code = grpcDeadlineExceeded
	}
	return grpcAnswer{status: []string{strconv.Itoa(code)}, message: []string{grpcPercentEncode(desc)}}
}

// grpcPercentEncode encodes a grpc-message as the gRPC HTTP/2 protocol
// says: every byte outside printable ASCII, and '%', as %XX.
func grpcPercentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16) + strconv.FormatUint(uint64(c)&15, 16)))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isGRPC reports whether r is a gRPC call: Content-Type application/grpc,
// alone or with a +codec suffix or parameters (gRPC over HTTP/2 spec).
func isGRPC(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	const prefix = "application/grpc"
	v := ct[0]
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return false
	}
	return len(v) == len(prefix) || v[len(prefix)] == '+' || v[len(prefix)] == ';'
}

// writeRefusal answers with ref: trailers-only for a gRPC call (HTTP 200,
// grpc-status and grpc-message, no body: the gRPC clients read nothing else),
// the JSON error otherwise. The metrics and the log line are the caller's,
// and the same for both forms.
func writeRefusal(w http.ResponseWriter, r *http.Request, ref *refusal) {
	if !isGRPC(r) {
		writeError(w, ref)
		return
	}
	h := w.Header()
	if ref.challenge != nil {
		h["Www-Authenticate"] = ref.challenge
	}
	h["Content-Type"] = grpcContentType
	h["Grpc-Status"] = ref.grpc.status
	h["Grpc-Message"] = ref.grpc.message
	w.WriteHeader(http.StatusOK)
}
