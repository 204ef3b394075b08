package login

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Cookie purposes, bound into each sealed value, so a flow cookie never
// opens as a session and the other way round.
const (
	aadSession = "session:"
	aadFlow    = "flow:"
)

// session is the content of the session cookie. Field names are one letter:
// every byte is paid for on every request.
type session struct {
	// Claims is the kept part of the ID token's payload, a JSON object.
	Claims json.RawMessage `json:"c"`
	// Expires is when the claims stop being valid (unix seconds): the ID
	// token's exp, or, after a refresh without a new ID token, the access
	// token's.
	Expires int64 `json:"e"`
	// Ends is the absolute end of the session (login + MaxAge): refreshes
	// never go past it.
	Ends int64 `json:"m"`
	// IDToken is the raw ID token, only with KeepIDToken.
	IDToken string `json:"i,omitempty"`
	// Refresh is the provider's refresh token, only with Refresh and only
	// when the provider granted one.
	Refresh string `json:"r,omitempty"`
}

// errBadSession is a session cookie that opened but does not hold a
// session: sealed by this package's keys, so only a bug or a key shared
// with another program makes one.
var errBadSession = errors.New("the session cookie does not hold a session")

// decodeSession reads an opened session cookie strictly: one object, no
// unknown fields, the claims an object with iss and sub strings.
func decodeSession(plain []byte) (*session, map[string]any, error) {
	var s session
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, nil, errBadSession
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errBadSession
	}
	values, err := decodeClaims(s.Claims)
	if err != nil || s.Expires <= 0 || s.Ends <= 0 {
		return nil, nil, errBadSession
	}
	return &s, values, nil
}

// decodeClaims decodes a claims object, numbers as json.Number so claim
// headers render them as the issuer wrote them (as the verifier does).
func decodeClaims(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var values map[string]any
	if err := dec.Decode(&values); err != nil || values == nil {
		return nil, errBadSession
	}
	if _, ok := values["iss"].(string); !ok {
		return nil, errBadSession
	}
	if _, ok := values["sub"].(string); !ok {
		return nil, errBadSession
	}
	return values, nil
}

// claimsOf is what the proxy sees of a session: the kept claims as if a
// token had carried exactly them. Payload is their JSON, base64url, so
// PAYLOAD_HEADER works too; From names the session cookie, so the proxy
// removes it before forwarding.
func claimsOf(raw []byte, values map[string]any, expires time.Time, cookie string) verifier.Claims {
	c := verifier.NewClaims(values)
	c.Payload = base64.RawURLEncoding.EncodeToString(raw)
	c.From = config.Lookup{Kind: config.InCookie, Name: cookie}
	c.Issuer, _ = values["iss"].(string)
	c.Subject, _ = values["sub"].(string)
	c.Expiry = expires
	return c
}

// alwaysKept are the claims every session keeps: who issued it, about
// whom, and until when (exp also reaches the upstream through
// PAYLOAD_HEADER).
var alwaysKept = []string{"iss", "sub", "exp"}

// keepClaims copies, from a verified token's payload, the claims at paths:
// each path's chain of objects with only the branches the paths need, so
// that Claims.Lookup finds the same values in the copy as in the token.
func keepClaims(c verifier.Claims, paths []string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c.Payload)
	if err != nil {
		return nil, errors.New("the verified token's payload is not base64url")
	}
	all, err := decodeClaims(raw)
	if err != nil {
		return nil, errors.New("the verified token's payload lacks iss or sub")
	}
	whole := verifier.NewClaims(all)
	out := map[string]any{}
	for _, group := range [][]string{alwaysKept, paths} {
		for _, p := range group {
			// Only paths that lead somewhere: copyPath would otherwise
			// leave empty objects that shadow nothing but cost bytes.
			if _, ok := whole.Lookup(p); ok {
				copyPath(all, out, p)
			}
		}
	}
	return json.Marshal(out)
}

// copyPath copies the value at path from src into dst, creating the
// objects on the way. It walks src as verifier.Claims.Lookup does: at each
// level the longest claim name that matches a prefix of the rest of the
// path wins, without backtracking.
func copyPath(src, dst map[string]any, path string) {
	for {
		if v, ok := src[path]; ok {
			dst[path] = v
			return
		}
		var next map[string]any
		name, rest := "", ""
		for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
			if v, ok := src[path[:i]]; ok {
				next, _ = v.(map[string]any)
				name, rest = path[:i], path[i+1:]
				break
			}
		}
		if next == nil {
			return
		}
		sub, ok := dst[name].(map[string]any)
		if !ok {
			sub = map[string]any{}
			dst[name] = sub
		}
		src, dst, path = next, sub, rest
	}
}
