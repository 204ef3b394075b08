package keys

import (
	"net/http"
	"testing"
	"time"
)

// FuzzCacheHeaders: Cache-Control comes from the issuer (or the relay) and
// If-None-Match from any caller of the relay. Neither may panic, and a
// max-age stays within a week and the interval within its bounds.
func FuzzCacheHeaders(f *testing.F) {
	for _, s := range []string{"max-age=300", "public, max-age=86400", "no-cache", `max-age="60"`, "max-age=-5", "max-age=99999999999999999999", `W/"a", "b"`, "*", ""} {
		f.Add(s)
	}
	o := KeyOptions{RefreshInterval: 5 * time.Minute}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Cache-Control", v)
		age := maxAge(h)
		if age < 0 || age > 7*24*time.Hour {
			t.Fatalf("max-age %s from %q", age, v)
		}
		if w := o.interval(age); w < o.RefreshInterval || w > MaxAgeStretch*o.RefreshInterval {
			t.Fatalf("interval %s from %q", w, v)
		}
		_ = matches(v, `"a"`)
	})
}
