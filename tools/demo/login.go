package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The demo's browser login: the issuer's demo client and its dev user.
const (
	loginClient   = "demo"
	loginSecret   = "demo-secret"
	loginUser     = "alice"
	loginPassword = "alice"
)

// loginVars writes the client secret and a fresh cookie key into dir and
// returns the sidecar's LOGIN_* variables. The listener is 127.0.0.1, so
// the cookies may go without Secure (LOGIN_PLAIN_HTTP).
func loginVars(dir string) ([]string, error) {
	secret := filepath.Join(dir, "login-client-secret")
	if err := os.WriteFile(secret, []byte(loginSecret+"\n"), 0o600); err != nil {
		return nil, err
	}
	key := make([]byte, 48)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	keys := filepath.Join(dir, "cookie-keys")
	if err := os.WriteFile(keys, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []string{
		"LOGIN_CLIENT_ID=" + loginClient,
		"LOGIN_CLIENT_SECRET_FILE=" + secret,
		"LOGIN_COOKIE_KEY_FILE=" + keys,
		"LOGIN_PLAIN_HTTP=true",
	}, nil
}

// stepLogin is (h): a browser without a token is sent to sign in, while
// curl still gets 401; the demo then signs in as a browser would and the
// app sees the user's claims.
func (d *demo) stepLogin(ctx context.Context) {
	d.heading("(h) Sign in with a browser (OpenID Connect code flow, one sealed session cookie)")
	d.say("Step (b) showed curl getting 401. A browser opening a page (Accept: text/html) is sent to the issuer instead:")
	jar, _ := cookiejar.New(nil) // cannot fail without options
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := d.proxyURL() + "/hello"
	fmt.Fprintf(d.out, "$ curl -sS -i -H 'Accept: text/html' %s\n", page)
	resp, err := d.browserGet(ctx, c, page)
	if err != nil {
		d.unexpectedf("request failed: %v", err)
		return
	}
	loc := resp.Header.Get("Location")
	fmt.Fprintf(d.out, "%s %s\nLocation: %s\n", resp.Proto, resp.Status, loc)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, d.issuerURL()+"/authorize?") {
		d.unexpectedf("status %d to %q, expected 302 to the issuer's /authorize", resp.StatusCode, loc)
		return
	}
	d.say("The issuer shows its login form; signing in as %s sends the browser to the sidecar's callback, which", loginUser)
	d.say("checks the ID token with the same keys as bearer tokens and sets one encrypted cookie. Done here with Go:")
	u, err := url.Parse(loc)
	if err != nil {
		d.unexpectedf("Location %q: %v", loc, err)
		return
	}
	form := u.Query()
	form.Set("username", loginUser)
	form.Set("password", loginPassword)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.issuerURL()+"/authorize", strings.NewReader(form.Encode()))
	if err != nil {
		d.unexpectedf("%v", err)
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	signedIn, err := c.Do(req)
	if err != nil {
		d.unexpectedf("sign-in failed: %v", err)
		return
	}
	drain(signedIn)
	callback := signedIn.Header.Get("Location")
	if !strings.HasPrefix(callback, d.proxyURL()+"/oauth2/callback?") {
		d.unexpectedf("the issuer answered %d to %q, expected a redirect to the sidecar's callback", signedIn.StatusCode, callback)
		return
	}
	back, err := d.browserGet(ctx, c, callback)
	if err != nil || back.StatusCode != http.StatusFound || back.Header.Get("Location") != "/hello" {
		d.unexpectedf("the callback did not send the browser back to /hello (%v)", err)
		return
	}
	for _, ck := range back.Cookies() {
		if ck.Name == "_jwt_sidecar" {
			fmt.Fprintf(d.out, "   session cookie _jwt_sidecar: %d bytes, HttpOnly, SameSite=Lax (no tokens inside, only the claims the headers need)\n", len(ck.Value))
		}
	}
	after, err := d.browserGet(ctx, c, page)
	if err != nil {
		d.unexpectedf("request failed: %v", err)
		return
	}
	if after.StatusCode != http.StatusOK {
		d.unexpectedf("with the session: status %d, expected 200", after.StatusCode)
		return
	}
	seen, ok := d.upstreamHeaders(response{body: after.body})
	if !ok {
		return
	}
	if got := seen["X-Auth-Subject"]; len(got) != 1 || got[0] != loginUser {
		d.unexpectedf("the upstream saw X-Auth-Subject = %q, expected %q", got, loginUser)
		return
	}
	fmt.Fprintf(d.out, "   the upstream saw X-Auth-Subject: %s   (the same header a bearer token gives; the app cannot tell)\n", loginUser)
	d.say("Try it yourself: open %s in a browser and sign in as %s / %s; %s/oauth2/sign_out signs out.", page, loginUser, loginPassword, d.proxyURL())
}

// browserResponse is a response whose body was read.
type browserResponse struct {
	*http.Response
	body []byte
}

// browserGet sends a browser navigation.
func (d *demo) browserGet(ctx context.Context, c *http.Client, target string) (browserResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return browserResponse{}, err
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := c.Do(req)
	if err != nil {
		return browserResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return browserResponse{Response: resp, body: body}, err
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
