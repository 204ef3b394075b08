package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

// stepDPoP is (i): a DPoP-bound token (RFC 9449). The client's key is made
// and each proof is built by `jwt-issuer proof`, the command printed, so a
// reader can repeat every line in a shell.
func (d *demo) stepDPoP(ctx context.Context) {
	d.heading("(i) A sender-constrained token: DPoP (RFC 9449)")
	d.say("A stolen bearer token works for the thief. A DPoP-bound token names the client's key (cnf.jkt), and")
	d.say("every request must carry a fresh proof signed by that key: a stolen token alone is useless.")
	keyShown := filepath.Join(d.opts.dir, "client.key")
	key, err := filepath.Abs(keyShown)
	if err != nil {
		d.unexpectedf("%v", err)
		return
	}
	paths := map[string]string{key: shellQuote(keyShown)}
	if _, ok := d.issuerCommand(ctx, "", paths, "genkey", "-alg", "ES256", "-out", key, "-force"); !ok {
		return
	}
	jkt, ok := d.issuerCommand(ctx, "JKT", paths, "proof", "-key", key, "-jkt")
	if !ok {
		return
	}
	d.say("The client asks for a token with a proof for POST %s/token (no ath: it has no token yet):", d.issuerURL())
	proof, ok := d.issuerCommand(ctx, "PROOF", paths, "proof", "-key", key, "-htm", "POST", "-htu", d.issuerURL()+"/token")
	if !ok {
		return
	}
	resp, ok := d.send(ctx, request{
		method:  http.MethodPost,
		url:     d.issuerURL() + "/token",
		user:    "demo:demo-secret",
		headers: []field{{name: "DPoP", value: proof, show: "$PROOF"}},
		form:    []field{{name: "grant_type", value: "client_credentials"}, {name: "scope", value: "read"}},
	}, http.StatusOK, true)
	if !ok {
		return
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(resp.body, &tr); err != nil || tr.TokenType != "DPoP" {
		d.unexpectedf("token_type %q, expected DPoP (%v)", tr.TokenType, err)
		return
	}
	var payload struct {
		CNF struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if raw, err := segment(tr.AccessToken, 1); err != nil || json.Unmarshal(raw, &payload) != nil || payload.CNF.JKT != jkt {
		d.unexpectedf("the token's cnf.jkt is %q, expected the key's thumbprint %q", payload.CNF.JKT, jkt)
		return
	}
	d.say("token_type DPoP, and the token's cnf.jkt is the client key's thumbprint ($JKT = %s).", jkt)
	fmt.Fprintf(d.out, "export DPOP_TOKEN='%s'\n", tr.AccessToken)

	target := d.proxyURL() + "/hello"
	d.say("Call through the sidecar: Authorization: DPoP, and a proof for GET %s with ath, the token's hash:", target)
	paths[tr.AccessToken] = `"$DPOP_TOKEN"`
	proof, ok = d.issuerCommand(ctx, "PROOF", paths, "proof", "-key", key, "-htm", "GET", "-htu", target, "-token", tr.AccessToken)
	if !ok {
		return
	}
	call := request{
		method: http.MethodGet,
		url:    target,
		headers: []field{
			{name: "Authorization", value: "DPoP " + tr.AccessToken, show: "DPoP $DPOP_TOKEN"},
			{name: "DPoP", value: proof, show: "$PROOF"},
		},
	}
	resp, ok = d.send(ctx, call, http.StatusOK, false)
	if !ok {
		return
	}
	if seen, ok := d.upstreamHeaders(resp); ok {
		if got := seen["X-Auth-Subject"]; !slices.Equal(got, []string{"demo"}) {
			d.unexpectedf("the upstream saw X-Auth-Subject = %q, expected \"demo\"", got)
			return
		}
		fmt.Fprintln(d.out, "   the upstream saw X-Auth-Subject: demo   (proof checked, then forwarded)")
	}

	d.say("Replay the same request, proof and all (what an attacker who captured it would do):")
	if resp, ok := d.send(ctx, call, http.StatusUnauthorized, false); ok {
		d.refusedFor(resp, "invalid_dpop_proof", "the DPoP proof was already used", "dpop_replayed")
	}
	d.say("Present the DPoP-bound token as a plain Bearer token (what a thief without the key would try):")
	if resp, ok := d.send(ctx, request{
		method:  http.MethodGet,
		url:     target,
		headers: []field{{name: "Authorization", value: "Bearer " + tr.AccessToken, show: "Bearer $DPOP_TOKEN"}},
	}, http.StatusUnauthorized, false); ok {
		d.refusedFor(resp, "invalid_token", "the token is DPoP-bound and must be sent with the DPoP scheme", "dpop_bound_as_bearer")
	}
}

// refusedFor checks a DPoP refusal's challenge (RFC 9449 §7.1) and names
// the reason it is counted under.
func (d *demo) refusedFor(resp response, code, description, reason string) {
	ch := resp.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="`+code+`"`) || !strings.Contains(ch, description) {
		d.unexpectedf("WWW-Authenticate = %q, expected a DPoP challenge with error=%q and %q", ch, code, description)
		return
	}
	d.say("401, reason %s (jwt_sidecar_requests_total{reason=%q}); the app never saw it.", reason, reason)
}

// issuerCommand prints and runs `jwt-issuer args...`; with variable, as
// `export VARIABLE=$(...)`, and returns its output. An argument in shown is
// printed as its value there (a relative path, a shell variable).
func (d *demo) issuerCommand(ctx context.Context, variable string, shown map[string]string, args ...string) (string, bool) {
	bin, err := filepath.Abs(d.opts.bin)
	if err != nil {
		d.unexpectedf("%v", err)
		return "", false
	}
	line := []string{filepath.Join(d.opts.bin, "jwt-issuer")}
	for _, a := range args {
		if v, ok := shown[a]; ok {
			line = append(line, v)
			continue
		}
		line = append(line, shellQuote(a))
	}
	cmd := strings.Join(line, " ")
	if variable != "" {
		cmd = "export " + variable + "=$(" + cmd + ")"
	}
	fmt.Fprintf(d.out, "$ %s\n", cmd)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := runCommand(cctx, proc.BinPath(bin, "jwt-issuer"), args...)
	if err != nil {
		d.unexpectedf("jwt-issuer %s: %v: %s", args[0], err, out)
		return "", false
	}
	return out, true
}
