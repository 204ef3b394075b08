package keys

import (
	"net/http"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

func TestMaxAge(t *testing.T) {
	for _, tt := range []struct {
		cc   []string
		want time.Duration
	}{
		{nil, 0},
		{[]string{"max-age=600"}, 10 * time.Minute},
		{[]string{"public, max-age=3600, must-revalidate"}, time.Hour},
		{[]string{`max-age="60"`}, time.Minute},
		{[]string{"max-age=600", "no-cache"}, 0},
		{[]string{"no-store, max-age=600"}, 0},
		{[]string{"max-age=-1"}, 0},
		{[]string{"max-age=soon"}, 0},
		{[]string{"max-age=99999999999999"}, 7 * 24 * time.Hour},
	} {
		h := http.Header{}
		for _, v := range tt.cc {
			h.Add("Cache-Control", v)
		}
		if got := maxAge(h); got != tt.want {
			t.Errorf("Cache-Control %q: max-age %s, want %s", tt.cc, got, tt.want)
		}
	}
}

// max-age stretches the interval up to MaxAgeStretch times and never
// shortens it.
func TestIntervalBounds(t *testing.T) {
	o := KeyOptions{RefreshInterval: 5 * time.Minute}
	for age, want := range map[time.Duration]time.Duration{
		0:                5 * time.Minute,
		time.Second:      5 * time.Minute,
		10 * time.Minute: 10 * time.Minute,
		20 * time.Minute: 20 * time.Minute,
		24 * time.Hour:   20 * time.Minute,
	} {
		if got := o.interval(age); got != want {
			t.Errorf("max-age %s: interval %s, want %s", age, got, want)
		}
	}
}

func TestETagMatches(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   bool
	}{
		{`"a"`, true}, {`W/"a"`, true}, {`"b", "a"`, true}, {`*`, true}, {``, false}, {`"b"`, false}, {`a`, false},
	} {
		if got := matches(tt.header, `"a"`); got != tt.want {
			t.Errorf("If-None-Match %q: %v, want %v", tt.header, got, tt.want)
		}
	}
}

// A key set whose max-age still covers it at a restart is not fetched at
// start: the wait before the first refresh is what is left of it (bounded
// by MaxAgeStretch intervals), and the validators come back with it.
func TestLoadFromDiskFreshness(t *testing.T) {
	dir := t.TempDir()
	env := newKeyEnv(KeyOptions{CacheDir: dir, RefreshInterval: time.Minute}, nil, nil)
	raw := jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a"))
	for _, tt := range []struct {
		name     string
		maxAge   time.Duration
		wantMin  time.Duration
		wantMax  time.Duration
		etag, lm string
	}{
		{name: "no max-age", maxAge: 0, etag: `"v1"`},
		{name: "max-age within bounds", maxAge: 3 * time.Minute, wantMin: 2 * time.Minute, wantMax: 3 * time.Minute, lm: "Mon, 01 Jan 2024 00:00:00 GMT"},
		{name: "max-age beyond bounds", maxAge: time.Hour, wantMin: 3 * time.Minute, wantMax: MaxAgeStretch * time.Minute, etag: `"v2"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewRemoteSource("https://idp.example/jwks", nil, nil)
			s.env = env
			s.validators = map[string]validators{s.url: {etag: tt.etag, lastModified: tt.lm}}
			if err := s.saveToDisk(raw, s.url, tt.maxAge); err != nil {
				t.Fatal(err)
			}
			again := NewRemoteSource("https://idp.example/jwks", nil, nil)
			again.env = env
			fresh := again.loadFromDisk()
			if fresh < tt.wantMin || fresh > tt.wantMax {
				t.Errorf("fresh for %s, want between %s and %s", fresh, tt.wantMin, tt.wantMax)
			}
			if got := again.validators[s.url]; got.etag != tt.etag || got.lastModified != tt.lm {
				t.Errorf("validators %+v, want etag %q last-modified %q", got, tt.etag, tt.lm)
			}
			if !again.loaded.Load() || string(*again.raw.Load()) != string(raw) {
				t.Error("the key set did not load byte for byte")
			}
		})
	}
}
