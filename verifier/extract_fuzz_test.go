package verifier

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// FuzzExtract feeds arbitrary Authorization headers (one or two lines) and
// a DPoP header to the token extraction, with and without the DPoP scheme
// accepted. The oracle is referenceExtract, written independently from the
// RFC 6750 §2.1 and RFC 9449 §7.1 grammar: both must agree on the token, its
// scheme and the refusal reason; the DPoP header never changes the result
// (it holds a proof, never a token); and a success is one well-formed JWS
// character string within the size limit. Seeds live in
// testdata/fuzz/FuzzExtract.
func FuzzExtract(f *testing.F) {
	f.Add("DPoP a.b.c", "", false, "e30.e30.sig")
	f.Add("Bearer a.b.c", "DPoP a.b.c", true, "")
	f.Add("dpop   a.b.c", "Basic Zm9vOmJhcg==", true, "x")
	f.Add("DPoP", "", false, "")
	f.Add("DPoPa.b.c", "bearer\t", true, "")
	f.Add("DPoP a.b.c ", "", false, "")
	lookups := []config.Lookup{{Kind: config.InHeader, Name: "Authorization"}}
	const maxSize = 128
	f.Fuzz(func(t *testing.T, auth1, auth2 string, two bool, proof string) {
		values := []string{auth1}
		if two {
			values = append(values, auth2)
		}
		for _, dpop := range []bool{true, false} {
			r := &http.Request{Header: http.Header{"Authorization": values}}
			tok, from, scheme, err := extractWith(r, lookups, maxSize, checkJWSChars, dpop)
			wantTok, wantScheme, wantReason := referenceExtract(values, dpop, maxSize)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("unclassified error %v", err)
				}
				if e.Reason != wantReason {
					t.Fatalf("values %q, dpop %v: reason %s, reference says %q (token %q)", values, dpop, e.Reason, wantReason, wantTok)
				}
			} else {
				if wantReason != "" || tok != wantTok || scheme != wantScheme {
					t.Fatalf("values %q, dpop %v: token %q scheme %s, reference says %q %s %q", values, dpop, tok, scheme, wantTok, wantScheme, wantReason)
				}
				if tok == "" || len(tok) > maxSize || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
					t.Fatalf("accepted %q", tok)
				}
				if from != lookups[0] {
					t.Fatalf("from = %v", from)
				}
				if scheme == SchemeDPoP && !dpop {
					t.Fatal("the DPoP scheme without dpop")
				}
			}
			// The proof header is never a token source: the same answer
			// with it.
			r.Header["Dpop"] = []string{proof, proof}
			tok2, _, scheme2, err2 := extractWith(r, lookups, maxSize, checkJWSChars, dpop)
			if tok2 != tok || scheme2 != scheme || (err == nil) != (err2 == nil) {
				t.Fatalf("the DPoP header %q changed the result: %q %s %v, then %q %s %v", proof, tok, scheme, err, tok2, scheme2, err2)
			}
		}
	})
}

// referenceExtract is the oracle: each value is `scheme 1*SP token` or
// the bare scheme (credentials without a token); other schemes (Basic)
// carry no token here. Exactly one token is allowed.
func referenceExtract(values []string, dpop bool, maxSize int) (token, scheme string, reason Reason) {
	schemes := []string{SchemeBearer}
	if dpop {
		schemes = append(schemes, SchemeDPoP)
	}
	found := 0
	for _, v := range values {
		for _, s := range schemes {
			name, rest, hasSP := strings.Cut(v, " ")
			switch {
			case hasSP && strings.EqualFold(name, s):
				token, scheme = strings.TrimLeft(rest, " "), s
			case strings.EqualFold(strings.TrimSpace(v), s):
				token, scheme = "", s
			default:
				continue
			}
			found++
		}
	}
	switch {
	case found == 0:
		return "", "", Missing
	case found > 1:
		return "", "", InvalidRequest
	case len(token) > maxSize:
		return token, scheme, Malformed
	case token == "":
		return "", scheme, InvalidRequest
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return token, scheme, Malformed
		}
	}
	return token, scheme, ""
}
