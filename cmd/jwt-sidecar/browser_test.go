package main

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/jwt-sidecar/jwt-sidecar/test/browsertest"
)

// TestBrowserLoginProcess signs a real headless Chromium in through the
// real jwt-sidecar binary, against a real jwt-issuer: the redirect, the
// issuer's form, the callback, the upstream seeing the claim headers, a
// reload reusing the session, a tampered cookie sent back to sign in, and
// sign-out through the issuer's end_session_endpoint. (The login package's
// own browser test adds an expired session, which needs its sealer.)
func TestBrowserLoginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and builds jwt-issuer")
	}
	rg := newLoginRig(t, false)

	b := browsertest.Start(t)
	ctx, step, location := b.Ctx, b.Step, b.Location
	signIn := func(name string) {
		t.Helper()
		step(name+": the login form", chromedp.WaitVisible(chromedp.CSS("#username")))
		if loc := location(); !strings.HasPrefix(loc, rg.issuer+"/authorize?") {
			t.Fatalf("%s: at %s, want the issuer's login form", name, loc)
		}
		step(name+": sign in",
			chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
			chromedp.SendKeys(chromedp.CSS("#password"), "wonderland"),
			chromedp.Click(chromedp.CSS("#submit")),
			chromedp.WaitVisible(chromedp.CSS("#sub")),
		)
	}
	session := func() string {
		t.Helper()
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{rg.base + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == "_jwt_sidecar" {
				if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
					t.Errorf("session cookie: HttpOnly %v, SameSite %q; want true, Lax", c.HTTPOnly, c.SameSite)
				}
				return c.Value
			}
		}
		return ""
	}
	pages := func() int { // requests for /app the upstream saw
		rg.up.mu.Lock()
		defer rg.up.mu.Unlock()
		n := 0
		for _, r := range rg.up.seen {
			if r.URL.Path == "/app" {
				n++
			}
		}
		return n
	}

	// 1. A navigation without a session goes to the issuer's form; signing
	// in comes back through the callback to the page asked for.
	step("open the app", chromedp.Navigate(rg.base+"/app?tab=2"))
	signIn("first login")
	if loc := location(); loc != rg.base+"/app?tab=2" {
		t.Errorf("after login at %s, want %s/app?tab=2", loc, rg.base)
	}
	if got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#email"))); err != nil || got != "alice@example.com" {
		t.Errorf("the page shows email %q (%v), want alice@example.com", got, err)
	}
	if seen := rg.up.last(); seen.Header.Get("X-Sub") != "alice" || strings.Contains(seen.Header.Get("Cookie"), "_jwt_sidecar") {
		t.Errorf("upstream saw X-Sub %q, Cookie %q; want alice and no session cookie", seen.Header.Get("X-Sub"), seen.Header.Get("Cookie"))
	}
	first := session()
	if first == "" {
		t.Fatal("no session cookie in the browser")
	}

	// 2. A reload reuses the session: no new login.
	before := pages()
	step("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#sub")))
	if pages() != before+1 || location() != rg.base+"/app?tab=2" {
		t.Errorf("reload: upstream %d→%d at %s; want one more request, same page", before, pages(), location())
	}

	// 3. A tampered cookie is sent back to sign in; the upstream sees only
	// the request after the new login.
	v := []byte(first)
	v[len(v)/2] ^= 1
	httpOnly := true
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
		Name: "_jwt_sidecar", Value: string(v), URL: rg.base + "/", Path: "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax,
	}); err != nil {
		t.Fatal(err)
	}
	n := pages()
	step("tampered cookie", chromedp.Navigate(rg.base+"/app"))
	signIn("login after tampering")
	if pages() != n+1 {
		t.Errorf("the upstream saw %d requests, want only the one after the new login", pages()-n)
	}

	// 4. Sign-out clears the session and passes through the issuer's
	// end_session_endpoint; back on the app, the browser must sign in again.
	// (The browser fetches /favicon.ico after a page, with the session it
	// then had, at a moment of its choosing: only pages are counted.)
	pagesSeen := func() int {
		rg.up.mu.Lock()
		defer rg.up.mu.Unlock()
		k := 0
		for _, r := range rg.up.seen {
			if r.URL.Path != "/favicon.ico" {
				k++
			}
		}
		return k
	}
	n = pagesSeen()
	step("sign out", chromedp.Navigate(rg.base+"/oauth2/sign_out"), chromedp.WaitVisible(chromedp.CSS("#username")))
	if session() != "" {
		t.Error("the session cookie survived sign-out")
	}
	if !strings.Contains(rg.idp.Logs(), `"user signed out"`) {
		t.Error("the issuer's end_session_endpoint was not reached")
	}
	if pagesSeen() != n {
		t.Errorf("the upstream saw %d requests after sign-out, want none; last %s %s", pagesSeen()-n, rg.up.last().Method, rg.up.last().URL)
	}
	body := scrape(t, rg.s)
	for _, want := range []string{`jwt_sidecar_logins_total{event="started"} 3`, `jwt_sidecar_logins_total{event="completed"} 2`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}
