package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// demoRevocationPoll is the demo sidecar's REVOCATION_REFRESH_INTERVAL:
// short, so step (j) is quick (the default is 10s).
const demoRevocationPoll = time.Second

// stepRevoke is (j): a token revoked at the issuer (RFC 7009) is refused by
// the sidecar within one poll of the issuer's revocation list, with no call
// to the issuer on the request path.
func (d *demo) stepRevoke(ctx context.Context) {
	d.heading("(j) Revoke a token: the sidecar polls the issuer's revocation list")
	d.say("Stateless verification never asks the issuer about a token. The sidecar instead polls")
	d.say("%s/revocations every %s (REVOCATION_REFRESH_INTERVAL, conditional requests) and checks every", d.issuerURL(), demoRevocationPoll)
	d.say("request against its local copy, token-cache hits included. A fresh token to revoke:")
	resp, ok := d.send(ctx, request{
		method: http.MethodPost,
		url:    d.issuerURL() + "/token",
		user:   "demo:demo-secret",
		form:   []field{{name: "grant_type", value: "client_credentials"}},
	}, http.StatusOK, false)
	if !ok {
		return
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.body, &tr); err != nil || tr.AccessToken == "" {
		d.unexpectedf("no access_token in the response (%v)", err)
		return
	}
	fmt.Fprintf(d.out, "export REVOKE_ME='%s'\n", tr.AccessToken)
	call := request{method: http.MethodGet, url: d.proxyURL() + "/hello", headers: []field{bearer(tr.AccessToken, "REVOKE_ME")}}
	if _, ok := d.send(ctx, call, http.StatusOK, false); !ok {
		return
	}
	d.say("Revoke it at the issuer (RFC 7009):")
	if _, ok := d.send(ctx, request{
		method: http.MethodPost,
		url:    d.issuerURL() + "/revoke",
		user:   "demo:demo-secret",
		form:   []field{{name: "token", value: tr.AccessToken, show: "$REVOKE_ME"}},
	}, http.StatusOK, false); !ok {
		return
	}
	revoked := time.Now()
	d.say("Now the same call, repeated every 100 ms until the sidecar refuses it:")
	fmt.Fprintf(d.out, "$ %s\n", call.command())
	for passed := 0; ; passed++ {
		resp, err := d.run.do(ctx, call)
		if err != nil {
			d.unexpectedf("request failed: %v", err)
			return
		}
		if resp.status == http.StatusUnauthorized {
			fmt.Fprintln(d.out, resp.statusLine)
			ch := resp.header.Get("WWW-Authenticate")
			fmt.Fprintf(d.out, "WWW-Authenticate: %s\n", ch)
			if !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "the token has been revoked") {
				d.unexpectedf(`WWW-Authenticate = %q, expected invalid_token and "the token has been revoked"`, ch)
				return
			}
			d.say("Refused %s after the revocation (%d request(s) passed before the next poll), reason revoked.",
				time.Since(revoked).Round(10*time.Millisecond), passed)
			break
		}
		if resp.status != http.StatusOK || time.Since(revoked) > 10*demoRevocationPoll {
			d.unexpectedf("status %d %s after the revocation; expected 401 revoked within %s", resp.status, time.Since(revoked).Round(time.Millisecond), demoRevocationPoll)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond): // the demo's own poll, not a wait for readiness
		}
	}
	d.say("The list the sidecar polls (entries expire with the tokens they cover, so it stays small):")
	if _, ok := d.send(ctx, request{method: http.MethodGet, url: d.issuerURL() + "/revocations"}, http.StatusOK, true); !ok {
		return
	}
	if d.token != "" {
		d.say("Other tokens are untouched: $TOKEN from step (a) still passes.")
		d.send(ctx, request{method: http.MethodGet, url: d.proxyURL() + "/hello", headers: []field{bearer(d.token, "TOKEN")}}, http.StatusOK, false)
	}
	d.say("POST %s/revoke-subject revokes every token of the calling client issued so far (\"log out everywhere\").", d.issuerURL())
}
