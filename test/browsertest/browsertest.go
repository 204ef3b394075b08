// Package browsertest starts Debian's headless Chromium for the tests that
// sign in as a person would, with the flags this closed network needs and a
// fresh profile. It is imported only by tests.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// StepTimeout bounds one step of a test in the browser.
const StepTimeout = 20 * time.Second

// Browser is one running Chromium. Ctx drives it; it is stopped when the
// test ends.
type Browser struct {
	t   testing.TB
	Ctx context.Context
}

// Path finds Chromium. Without it the test is skipped with a message,
// except under CI=true, where CI must have installed it.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; CI must install Debian's chromium package")
	}
	t.Skip("chromium is not installed (Debian: apt-get install chromium); the real-browser test is skipped")
	return ""
}

// Start runs headless Chromium with a fresh profile, no network beyond
// what the test serves on 127.0.0.1 (no background, component or sync
// traffic, which this machine's closed network would refuse).
func Start(t testing.TB) *Browser {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(Path(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, unbounded by a step's timeout
		t.Fatalf("start chromium: %v", err)
	}
	return &Browser{t: t, Ctx: ctx}
}

// Step runs actions within StepTimeout, failing the test with name.
func (b *Browser) Step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", name, err)
	}
}

// Location is the page's URL now.
func (b *Browser) Location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.Ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}
