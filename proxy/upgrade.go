package proxy

import (
	"net/http"
	"strings"
)

// dropHTTP2Upgrade removes a client's request to switch the connection to
// HTTP/2 (Upgrade: h2c, h2 or HTTP/2.0) from the outbound request, and
// HTTP2-Settings with it. The sidecar never upgrades a connection to h2c
// itself (RFC 9113 §3.1 deprecates it; prior knowledge and TLS with ALPN
// remain), so the request is forwarded as the plain HTTP/1.1 request it
// also is. Passed on, it would let an upstream that does accept the upgrade
// answer 101 and turn the connection into an HTTP/2 tunnel straight to it,
// whose further streams the sidecar would never see or authenticate (h2c
// smuggling). Other upgrades, such as WebSocket, pass through.
func dropHTTP2Upgrade(h http.Header) {
	delete(h, "Http2-Settings")
	up, ok := h["Upgrade"]
	if !ok {
		return
	}
	for _, v := range up {
		for tok := range strings.SplitSeq(v, ",") {
			if isHTTP2Protocol(strings.TrimSpace(tok)) {
				delete(h, "Upgrade")
				delete(h, "Connection")
				return
			}
		}
	}
}

// isHTTP2Protocol reports whether an Upgrade protocol token (RFC 9110
// §7.8: name, or name/version) names HTTP/2, in any case.
func isHTTP2Protocol(tok string) bool {
	name, version, _ := strings.Cut(tok, "/")
	switch {
	case strings.EqualFold(name, "h2c"), strings.EqualFold(name, "h2"):
		return true
	case strings.EqualFold(name, "HTTP"):
		return strings.HasPrefix(version, "2")
	}
	return false
}
