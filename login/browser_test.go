package login

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/browsertest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// TestBrowserLogin signs a real headless Chromium in through the login
// package to an upstream, against a real jwt-issuer process: the redirect,
// the login form, the callback, the upstream seeing the claim headers, a
// reload reusing the session, a tampered and an expired cookie sent back
// to login, and sign-out through the issuer's end_session_endpoint.
func TestBrowserLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and builds jwt-issuer")
	}

	// The real issuer, built and run as a process.
	bin, cleanup, err := proctest.Build("../cmd/jwt-issuer", "jwt-issuer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	addr := proctest.FreeAddr(t)
	issuer := "http://" + addr
	users := writeFile(t, "users.json", `[{"username":"alice","password":"wonderland","claims":{"email":"alice@example.com","groups":["staff"]}}]`)
	idp := proctest.Start(t, bin, []string{
		"LISTEN_ADDR=" + addr, "ISSUER_URL=" + issuer, "SIGNING_ALG=ES256",
		"CLIENTS=web-app:web-secret", "USERS=dev:dev", "USERS_FILE=" + users, "TOKEN_TTL=10m",
	})
	idp.WaitFor(t, issuer+"/healthz", http.StatusOK)

	// The sidecar's verifier, with keys found by OIDC discovery.
	keys, err := keys.NewKeys(keys.KeyOptions{}, nil, slog.New(slog.DiscardHandler), keys.NewOIDCSource(issuer, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{Keys: keys, Audiences: []string{"web-app"}, RequireExp: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := newCountingRecorder()
	l, err := New(Options{
		Issuer:           issuer,
		ClientID:         "web-app",
		ClientSecretFile: writeFile(t, "secret", "web-secret\n"),
		CookieKeyFile:    writeFile(t, "keys", keyA+"\n"),
		Refresh:          true,
		KeepIDToken:      true,
		KeepClaims:       []string{"email", "groups"},
		PlainHTTP:        true, // http://127.0.0.1: cookies without Secure
		LoopbackListener: true,
		VerifyIDToken:    v.VerifyToken,
		Recorder:         rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	app := httptest.NewServer(gate(l, up))
	t.Cleanup(app.Close)

	b := browsertest.Start(t)
	ctx, step, location := b.Ctx, b.Step, b.Location
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	signIn := func(name string) {
		t.Helper()
		step(name+": the login form", chromedp.WaitVisible(chromedp.CSS("#username")))
		if loc := location(); !strings.HasPrefix(loc, issuer+"/authorize?") {
			t.Fatalf("%s: at %s, want the issuer's login form", name, loc)
		}
		step(name+": sign in",
			chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
			chromedp.SendKeys(chromedp.CSS("#password"), "wonderland"),
			chromedp.Click(chromedp.CSS("#submit")),
			chromedp.WaitVisible(chromedp.CSS("#sub")),
		)
	}
	sessionValue := func() string {
		t.Helper()
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{app.URL + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == DefaultCookieName {
				if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
					t.Errorf("session cookie: HttpOnly %v, SameSite %q; want true, Lax", c.HTTPOnly, c.SameSite)
				}
				return c.Value
			}
		}
		return ""
	}
	setSession := func(value string) {
		t.Helper()
		httpOnly := true
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: DefaultCookieName, Value: value, URL: app.URL + "/", Path: "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax,
		}); err != nil {
			t.Fatal(err)
		}
	}

	// 1. A navigation without a session goes to the issuer's form; signing
	// in comes back through the callback to the page asked for.
	step("open the app", chromedp.Navigate(app.URL+"/app?tab=2"))
	signIn("first login")
	if loc := location(); loc != app.URL+"/app?tab=2" {
		t.Errorf("after login at %s, want %s/app?tab=2", loc, app.URL)
	}
	if got := text("#sub"); got != "alice" {
		t.Errorf("the page shows sub %q, want alice", got)
	}
	seen := up.lastPage("/app")
	if seen.Header.Get("X-Sub") != "alice" || seen.Header.Get("X-Email") != "alice@example.com" {
		t.Errorf("upstream headers = %v", seen.Header)
	}
	if strings.Contains(seen.Header.Get("Cookie"), DefaultCookieName) {
		t.Error("the upstream saw the session cookie")
	}
	first := sessionValue()
	if first == "" {
		t.Fatal("no session cookie in the browser")
	}

	// 2. A reload reuses the session: no new login.
	before := up.pages("/app")
	step("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#sub")))
	if up.pages("/app") != before+1 || rec.started != 1 || location() != app.URL+"/app?tab=2" {
		t.Errorf("reload: upstream %d→%d, logins started %d; want one more request and no new login", before, up.pages("/app"), rec.started)
	}

	// 3. A tampered cookie is sent back to login.
	setSession(flip(first, len(first)/2))
	n := up.pages("/app")
	step("tampered cookie", chromedp.Navigate(app.URL+"/app"))
	signIn("login after tampering")
	if up.pages("/app") != n+1 {
		t.Errorf("the upstream saw %d requests, want only the one after the new login", up.pages("/app")-n)
	}

	// 4. An expired session, sealed with the right key, is sent back to
	// login too.
	expired, err := l.sealSession(&session{Claims: []byte(`{"iss":"` + issuer + `","sub":"alice"}`), Expires: time.Now().Add(-time.Minute).Unix(), Ends: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	setSession(expired)
	n = up.pages("/app")
	step("expired cookie", chromedp.Navigate(app.URL+"/app"))
	signIn("login after expiry")
	if up.pages("/app") != n+1 {
		t.Errorf("the upstream saw %d requests, want only the one after the new login", up.pages("/app")-n)
	}

	// 5. Sign-out clears the session and passes through the issuer's
	// end_session_endpoint; back on the app, the browser must sign in again.
	n = up.count()
	step("sign out", chromedp.Navigate(app.URL+DefaultSignOutPath), chromedp.WaitVisible(chromedp.CSS("#username")))
	if sessionValue() != "" {
		t.Error("the session cookie survived sign-out")
	}
	if !strings.Contains(idp.Logs(), `"user signed out"`) {
		t.Error("the issuer's end_session_endpoint was not reached")
	}
	if up.count() != n {
		t.Errorf("the upstream saw %d requests after sign-out, want none", up.count()-n)
	}
	if rec.completed != 3 || rec.started != 4 {
		t.Errorf("logins started %d, completed %d; want 4 and 3", rec.started, rec.completed)
	}
}
