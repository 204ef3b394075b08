package keys

import (
	"net/http"
	"testing"
	"time"
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
