package policy_test

import (
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
)

// refGlob is the obvious, exponential definition of the glob: "**" takes
// any number of segments, any other segment matches one path segment with
// path.Match (whose only special character in a valid glob is '*').
func refGlob(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if refGlob(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], segs[0])
	return err == nil && ok && refGlob(pat[1:], segs[1:])
}

// FuzzGlobMatch checks the linear matcher against the reference on any
// valid glob and any cleaned path.
func FuzzGlobMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/api/*/items", "/api/v1/items"}, {"/a/**", "/a"}, {"/**/b/**/c", "/x/b/y/z/c"},
		{"/a*b*c/**", "/aXbYc/d/"}, {"/*", "/"}, {"/v*/status", "/v/status"}, {"/**/x*", "/a/b/xyz"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, glob, p string) {
		if len(glob) > 64 || len(p) > 128 || (policy.Match{Glob: glob}).Validate() != nil {
			return
		}
		pol, err := policy.New(policy.Options{Rules: []policy.Rule{{Name: "g", Match: policy.Match{Glob: glob},
			Require: policy.Requirement{Kind: policy.RequirePublic}}}})
		if err != nil {
			t.Fatalf("valid glob %q refused: %v", glob, err)
		}
		clean := config.CleanPath(strings.ReplaceAll(p, "\x00", ""))
		r := httptest.NewRequest("GET", "http://x/", nil)
		got := pol.Match(r, clean, nil).Name == "g"
		want := refGlob(strings.Split(glob[1:], "/"), strings.Split(clean[1:], "/"))
		if got != want {
			t.Errorf("glob %q, path %q: matched %v, want %v", glob, clean, got, want)
		}
	})
}
