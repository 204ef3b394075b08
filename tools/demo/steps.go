package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"
)

const (
	// maxBodyShown bounds how much of a body is printed.
	maxBodyShown = 4000
	// bearerRealm is the SPEC's challenge for a request without a token.
	bearerRealm = `Bearer realm="jwt-sidecar"`
)

// steps walks through the demo. Each check that fails prints an UNEXPECTED
// line and counts.
func (d *demo) steps(ctx context.Context) {
	if d.run.curl == "" {
		fmt.Fprintln(d.out, "\ncurl not found on PATH: each request below is sent with Go's net/http instead, exactly as the printed curl command would send it.")
	}
	token := d.stepToken(ctx)
	d.stepNoToken(ctx)
	if token == "" {
		d.unexpectedf("step (a) gave no token; skipping steps (c), (d) and (e), which need one")
	} else {
		d.stepWithToken(ctx)
		d.stepTampered(ctx, token)
		d.stepForged(ctx)
	}
	d.stepMetrics(ctx)
	if d.opts.compare {
		d.stepCompare(ctx)
	}
	d.stepLogin(ctx)
	d.stepDPoP(ctx)
	d.stepRevoke(ctx)
}

// heading starts a step.
func (d *demo) heading(title string) {
	fmt.Fprintf(d.out, "\n== %s ==\n", title)
}

// say prints an explanation line.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "-> "+format+"\n", args...)
}

// unexpectedf reports a failed check.
func (d *demo) unexpectedf(format string, args ...any) {
	d.unexpected++
	fmt.Fprintf(d.out, "UNEXPECTED: "+format+"\n", args...)
}

// send prints the curl command, sends the request and prints the status
// line, the WWW-Authenticate header and, with showBody, the body. It returns
// false (after reporting) when the request could not be sent or the status
// is not want.
func (d *demo) send(ctx context.Context, r request, want int, showBody bool) (response, bool) {
	fmt.Fprintf(d.out, "$ %s\n", r.command())
	if d.run.curl == "" {
		fmt.Fprintln(d.out, "(curl not found; sent the same request with Go)")
	}
	resp, err := d.run.do(ctx, r)
	if err != nil {
		d.unexpectedf("request failed: %v", err)
		return response{}, false
	}
	fmt.Fprintln(d.out, resp.statusLine)
	for _, v := range resp.header.Values("WWW-Authenticate") {
		fmt.Fprintf(d.out, "WWW-Authenticate: %s\n", v)
	}
	if showBody {
		body := strings.TrimSpace(string(resp.body))
		if len(body) > maxBodyShown {
			body = body[:maxBodyShown] + "\n... (cut)"
		}
		if body != "" {
			fmt.Fprintln(d.out, body)
		}
	}
	if resp.status != want {
		d.unexpectedf("status %d, expected %d", resp.status, want)
		return resp, false
	}
	return resp, true
}

// bearer is the Authorization header with a token held in a shell variable.
func bearer(token, variable string) field {
	return field{name: "Authorization", value: "Bearer " + token, show: "Bearer $" + variable}
}

// stepToken is (a): a client_credentials token from the issuer.
func (d *demo) stepToken(ctx context.Context) string {
	d.heading("(a) Get a token from the issuer (OAuth 2.0 client_credentials)")
	d.say("The client authenticates with HTTP Basic (demo:demo-secret) and asks for two scopes.")
	resp, ok := d.send(ctx, request{
		method: http.MethodPost,
		url:    d.issuerURL() + "/token",
		user:   "demo:demo-secret",
		form:   []field{{name: "grant_type", value: "client_credentials"}, {name: "scope", value: "read write"}},
	}, http.StatusOK, true)
	if !ok {
		return ""
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.body, &tr); err != nil || strings.Count(tr.AccessToken, ".") != 2 {
		d.unexpectedf("no access_token in the response (%v)", err)
		return ""
	}
	if payload, err := segment(tr.AccessToken, 1); err == nil {
		d.say("The token's payload, base64url-decoded (anyone can read it; only the signature makes it trustworthy):")
		fmt.Fprintf(d.out, "   %s\n", payload)
	}
	d.say("To follow along in your shell, save it:")
	fmt.Fprintf(d.out, "export TOKEN='%s'\n", tr.AccessToken)
	d.token = tr.AccessToken
	return tr.AccessToken
}

// stepNoToken is (b): the sidecar refuses a request without a token.
func (d *demo) stepNoToken(ctx context.Context) {
	d.heading("(b) Call the app through the sidecar without a token")
	resp, ok := d.send(ctx, request{method: http.MethodGet, url: d.proxyURL() + "/hello"}, http.StatusUnauthorized, true)
	if !ok {
		return
	}
	ch := resp.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, bearerRealm) || strings.Contains(ch, "error=") {
		d.unexpectedf("WWW-Authenticate = %q, expected the bare challenge %s (RFC 6750 §3)", ch, bearerRealm)
		return
	}
	d.say("401 with a bare Bearer challenge: no token, so no error code (RFC 6750 §3.1). The app never saw the request.")
}

// stepWithToken is (c): a valid token passes, claims arrive as headers and
// the token is stripped.
func (d *demo) stepWithToken(ctx context.Context) {
	d.heading("(c) Call the app through the sidecar with the token")
	d.say("The sidecar verifies the signature locally with the issuer's published keys: no call to the issuer on this request.")
	resp, ok := d.send(ctx, request{
		method:  http.MethodGet,
		url:     d.proxyURL() + "/hello",
		headers: []field{bearer(d.token, "TOKEN")},
	}, http.StatusOK, true)
	if !ok {
		return
	}
	seen, ok := d.upstreamHeaders(resp)
	if !ok {
		return
	}
	d.say("The upstream (echo-upstream) answered with what it received. Note:")
	for _, h := range []struct{ name, want string }{
		{"X-Auth-Subject", "demo"},
		{"X-Auth-Scope", "read write"},
		{"X-Auth-Client", "demo"},
	} {
		got := seen[h.name]
		if !slices.Equal(got, []string{h.want}) {
			d.unexpectedf("the upstream saw %s = %q, expected %q", h.name, got, h.want)
			continue
		}
		fmt.Fprintf(d.out, "   %s: %s   (from the verified claims)\n", h.name, got[0])
	}
	if v, present := seen["Authorization"]; present {
		d.unexpectedf("the upstream saw Authorization %q; the sidecar should strip the token", v)
	} else {
		fmt.Fprintln(d.out, "   Authorization: (absent: the sidecar stripped the token before forwarding)")
	}
}

// stepTampered is (d): one changed character in the payload breaks the
// signature.
func (d *demo) stepTampered(ctx context.Context, token string) {
	d.heading("(d) Tamper with the token")
	tampered, what, err := tamper(token)
	if err != nil {
		d.unexpectedf("cannot tamper with the token: %v", err)
		return
	}
	d.say("Flipped one character in the payload segment (%s); the signature is unchanged.", what)
	fmt.Fprintf(d.out, "export TAMPERED='%s'\n", tampered)
	resp, ok := d.send(ctx, request{
		method:  http.MethodGet,
		url:     d.proxyURL() + "/hello",
		headers: []field{bearer(tampered, "TAMPERED")},
	}, http.StatusUnauthorized, true)
	if !ok {
		return
	}
	if ch := resp.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
		d.unexpectedf(`WWW-Authenticate = %q, expected error="invalid_token"`, ch)
		return
	}
	d.say("401 invalid_token: the signature no longer matches the content, so the request never reaches the app.")
}

// stepForged is (e): clients cannot forge the claim headers.
func (d *demo) stepForged(ctx context.Context) {
	d.heading("(e) Try to forge an identity header")
	d.say("Without a token, a forged X-Auth-Subject does not help:")
	forged := field{name: "X-Auth-Subject", value: "admin"}
	if _, ok := d.send(ctx, request{
		method:  http.MethodGet,
		url:     d.proxyURL() + "/hello",
		headers: []field{forged},
	}, http.StatusUnauthorized, false); ok {
		d.say("401: refused.")
	}
	d.say("With a valid token, the sidecar drops the forged header and sets the verified one:")
	resp, ok := d.send(ctx, request{
		method:  http.MethodGet,
		url:     d.proxyURL() + "/hello",
		headers: []field{bearer(d.token, "TOKEN"), forged},
	}, http.StatusOK, false)
	if !ok {
		return
	}
	seen, ok := d.upstreamHeaders(resp)
	if !ok {
		return
	}
	if got := seen["X-Auth-Subject"]; !slices.Equal(got, []string{"demo"}) {
		d.unexpectedf("the upstream saw X-Auth-Subject = %q, expected only \"demo\"", got)
		return
	}
	fmt.Fprintln(d.out, "   the upstream saw X-Auth-Subject: demo   (the forged \"admin\" was removed)")
}

// upstreamHeaders decodes the echo-upstream body.
func (d *demo) upstreamHeaders(resp response) (map[string][]string, bool) {
	var echo struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal(resp.body, &echo); err != nil || echo.Headers == nil {
		d.unexpectedf("the body is not echo-upstream's JSON (%v)", err)
		return nil, false
	}
	return echo.Headers, true
}

// segment returns the base64url-decoded part i of a compact JWS.
func segment(token string, i int) ([]byte, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("a JWS has 3 parts, this one %d", len(parts))
	}
	return base64.RawURLEncoding.DecodeString(parts[i])
}

// tamper changes one character of the payload: the case of the last letter
// of the sub value, so the payload stays valid JSON and only the signature
// check can catch it. It returns the new token and what changed.
func tamper(token string) (string, string, error) {
	payload, err := segment(token, 1)
	if err != nil {
		return "", "", err
	}
	const key = `"sub":"`
	start := bytes.Index(payload, []byte(key))
	if start < 0 {
		return "", "", fmt.Errorf("no sub claim in %s", payload)
	}
	start += len(key)
	end := bytes.IndexByte(payload[start:], '"')
	if end <= 0 {
		return "", "", fmt.Errorf("empty sub claim in %s", payload)
	}
	end += start
	before := string(payload[start:end])
	last := rune(payload[end-1])
	switch {
	case unicode.IsLower(last):
		payload[end-1] = byte(unicode.ToUpper(last))
	case unicode.IsUpper(last):
		payload[end-1] = byte(unicode.ToLower(last))
	case last == 'x':
		payload[end-1] = 'y'
	default:
		payload[end-1] = 'x'
	}
	parts := strings.Split(token, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, "."), fmt.Sprintf("sub %q became %q", before, payload[start:end]), nil
}
