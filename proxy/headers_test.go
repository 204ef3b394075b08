package proxy

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

func TestParseClaimHeaders(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		want    []config.ClaimHeader
		wantErr bool
	}{
		{name: "empty", spec: "", want: nil},
		{
			name: "spec example",
			spec: "sub=X-Auth-Subject,email=X-Auth-Email,realm_access.roles=X-Auth-Roles",
			want: []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}, {Claim: "email", Header: "X-Auth-Email"}, {Claim: "realm_access.roles", Header: "X-Auth-Roles"}},
		},
		{name: "spaces and case", spec: " sub = x-auth-subject , ", want: []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}}},
		{name: "claim with dots and slashes", spec: "https://example.com/roles=X-Roles", want: []config.ClaimHeader{{Claim: "https://example.com/roles", Header: "X-Roles"}}},
		{name: "no =", spec: "sub", wantErr: true},
		{name: "empty claim", spec: "=X-A", wantErr: true},
		{name: "empty header", spec: "sub=", wantErr: true},
		{name: "space in header", spec: "sub=X Auth", wantErr: true},
		{name: "colon in header", spec: "sub=X-Auth:", wantErr: true},
		{name: "CRLF in header", spec: "sub=X-A\r\nX-B", wantErr: true},
		{name: "duplicate header", spec: "sub=X-A,email=x-a", wantErr: true},
		{name: "duplicate header with underscore", spec: "sub=X-Auth-A,email=X_Auth_A", wantErr: true},
		{name: "Host", spec: "sub=Host", wantErr: true},
		{name: "Authorization", spec: "sub=authorization", wantErr: true},
		{name: "Connection", spec: "sub=Connection", wantErr: true},
		{name: "Content-Length", spec: "sub=Content-Length", wantErr: true},
		{name: "Content_Length", spec: "sub=Content_Length", wantErr: true},
		{name: "Transfer-Encoding", spec: "sub=Transfer-Encoding", wantErr: true},
		{name: "Cookie", spec: "sub=Cookie", wantErr: true},
		{name: "Upgrade", spec: "sub=Upgrade", wantErr: true},
		{name: "X-Forwarded-For", spec: "sub=X-Forwarded-For", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.ParseClaimHeaders(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParsePublicPaths(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		want    []string
		wantErr bool
	}{
		{name: "empty", spec: " , ", want: nil},
		{name: "exact and prefix", spec: "/healthz, /public/*", want: []string{"/healthz", "/public/*"}},
		{name: "everything", spec: "/*", want: []string{"/*"}},
		{name: "trailing slash", spec: "/docs/", want: []string{"/docs/"}},
		{name: "relative", spec: "public/*", wantErr: true},
		{name: "star inside", spec: "/a/*/b", wantErr: true},
		{name: "two stars", spec: "/a**", wantErr: true},
		{name: "dot-dot", spec: "/public/../admin", wantErr: true},
		{name: "double slash", spec: "//public", wantErr: true},
		{name: "dot", spec: "/./a*", wantErr: true},
		{name: "duplicate", spec: "/a,/a", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.ParsePublicPaths(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{in: "", want: "/"},
		{in: "/", want: "/"},
		{in: "/a/b", want: "/a/b"},
		{in: "/a/b/", want: "/a/b/"},
		{in: "//a//b//", want: "/a/b/"},
		{in: "/public/../admin", want: "/admin"},
		{in: "/public/../admin/", want: "/admin/"},
		{in: "/../../etc/passwd", want: "/etc/passwd"},
		{in: "/a/./b/.", want: "/a/b"},
		{in: "/a/..", want: "/"},
		{in: "/a/../", want: "/"},
		{in: "*", want: "/*"},
	}
	for _, tt := range tests {
		if got := config.CleanPath(tt.in); got != tt.want {
			t.Errorf("config.CleanPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = config.CleanPath("/api/v1/items/") }); n != 0 {
		t.Errorf("cleanPath of a clean path allocates %v times, want 0", n)
	}
}

// decode reads JSON as the verifier does: numbers stay json.Number.
func decode(t testing.TB, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHeaderValue(t *testing.T) {
	tests := []struct {
		name   string
		json   string
		want   string
		wantOK bool
	}{
		{name: "string", json: `"alice"`, want: "alice", wantOK: true},
		{name: "empty string", json: `""`, want: "", wantOK: true},
		{name: "unicode", json: `"José 日本"`, want: "José 日本", wantOK: true},
		{name: "CRLF replaced", json: `"a\r\nX-Admin: true"`, want: "a  X-Admin: true", wantOK: true},
		{name: "controls replaced", json: `"a\u0000b\tc\u007fd\u001fe"`, want: "a b c d e", wantOK: true},
		{name: "integer", json: `42`, want: "42", wantOK: true},
		{name: "negative", json: `-7`, want: "-7", wantOK: true},
		{name: "big integer exact", json: `123456789012345678901234567890`, want: "123456789012345678901234567890", wantOK: true},
		{name: "exponent", json: `1e21`, want: "1000000000000000000000", wantOK: true},
		{name: "exponent with fraction", json: `1.5E+3`, want: "1500", wantOK: true},
		{name: "negative exponent", json: `-1.25e-3`, want: "-0.00125", wantOK: true},
		{name: "small", json: `1e-7`, want: "0.0000001", wantOK: true},
		{name: "float", json: `3.14`, want: "3.14", wantOK: true},
		{name: "float trailing zeros", json: `1.500`, want: "1.5", wantOK: true},
		{name: "float zero fraction", json: `2.0`, want: "2", wantOK: true},
		{name: "fractional exp", json: `1700000000.5`, want: "1700000000.5", wantOK: true},
		{name: "zero with exponent", json: `0e10`, want: "0", wantOK: true},
		{name: "negative zero", json: `-0.0`, want: "0", wantOK: true},
		{name: "exact beyond float64", json: `0.1000000000000000055511151231257827e1`, want: "1.000000000000000055511151231257827", wantOK: true},
		{name: "huge exponent", json: `1e999999`, wantOK: false},
		{name: "true", json: `true`, want: "true", wantOK: true},
		{name: "false", json: `false`, want: "false", wantOK: true},
		{name: "null", json: `null`, wantOK: false},
		{name: "array", json: `["admin","user"]`, want: "admin,user", wantOK: true},
		{name: "one-element array", json: `["admin"]`, want: "admin", wantOK: true},
		{name: "empty array", json: `[]`, want: "", wantOK: true},
		{name: "mixed array", json: `["a",1,1e3,true,null,{"k":"v"},["x","y"]]`, want: `a,1,1000,true,{"k":"v"},["x","y"]`, wantOK: true},
		{name: "array with CRLF", json: `["a\r\nb"]`, want: "a  b", wantOK: true},
		{name: "array of CRLF strings", json: `["a\nb","c"]`, want: "a b,c", wantOK: true},
		{name: "object", json: `{"b":[1,2],"a":"x\n\"y\"","c":null,"d":1e2}`, want: `{"a":"x\n\"y\"","b":[1,2],"c":null,"d":1e2}`, wantOK: true},
		{name: "too long", json: `"` + strings.Repeat("x", MaxHeaderValue+1) + `"`, wantOK: false},
		{name: "just long enough", json: `"` + strings.Repeat("x", MaxHeaderValue) + `"`, want: strings.Repeat("x", MaxHeaderValue), wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := HeaderValue(decode(t, tt.json))
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("HeaderValue(%s) = %q, %v, want %q, %v", tt.json, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestHeaderValueOtherTypes(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{name: "float64", v: 1e21, want: "1000000000000000000000"},
		{name: "int", v: 7, want: "7"},
		{name: "invalid json.Number", v: json.Number("12\nab"), want: "12 ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := HeaderValue(tt.v); got != tt.want {
				t.Errorf("HeaderValue(%v) = %q, want %q", tt.v, got, tt.want)
			}
		})
	}
}

func TestHeaderValueDoesNotAllocate(t *testing.T) {
	values := []any{"alice", json.Number("1700000000"), true, []any{"admin"}}
	for _, v := range values {
		if n := testing.AllocsPerRun(100, func() { _, _ = HeaderValue(v) }); n != 0 {
			t.Errorf("HeaderValue(%v) allocates %v times, want 0", v, n)
		}
	}
}

func TestSetClaimHeaders(t *testing.T) {
	hm := &policy.Forwarding{
		ClaimHeaders: []config.ClaimHeader{
			{Claim: "sub", Header: "X-Sub"},
			{Claim: "realm_access.roles", Header: "X-Roles"},
			{Claim: "missing", Header: "X-Missing"},
			{Claim: "nothing", Header: "X-Nothing"},
			{Claim: "https://example.com/tenant", Header: "X-Tenant"},
			{Claim: "big", Header: "X-Big"},
		},
		PayloadHeader: "X-Payload",
	}
	values, _ := decode(t, `{"sub":"alice","realm_access":{"roles":["a","b"]},"nothing":null,
		"https://example.com/tenant":"t1","big":"`+strings.Repeat("x", MaxHeaderValue+1)+`"}`).(map[string]any)
	c := verifier.NewClaims(values)
	c.Payload = "eyJzdWIiOiJhbGljZSJ9"
	h := http.Header{}
	setHeaders(t.Context(), discardLogger(), h, hm, &c)
	want := http.Header{
		"X-Sub":     {"alice"},
		"X-Roles":   {"a,b"},
		"X-Tenant":  {"t1"},
		"X-Payload": {"eyJzdWIiOiJhbGljZSJ9"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("headers = %v, want %v", h, want)
	}
}

func TestRemoveQueryParam(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{raw: "", want: ""},
		{raw: "t=1", want: ""},
		{raw: "a=1&t=x&b=2", want: "a=1&b=2"},
		{raw: "t=x&t=y&a", want: "a"},
		{raw: "%74=x&a=%20", want: "a=%20"},
		{raw: "tt=1&a=t", want: "tt=1&a=t"},
	}
	for _, tt := range tests {
		if got := removeQueryParam(tt.raw, "t"); got != tt.want {
			t.Errorf("removeQueryParam(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestRemoveCookie(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{name: "only", lines: []string{"s=tok"}, want: nil},
		{name: "middle", lines: []string{"a=1; s=tok; b=2"}, want: []string{"a=1; b=2"}},
		{name: "two lines", lines: []string{"a=1", "s=tok;b=2"}, want: []string{"a=1", "b=2"}},
		{name: "name as a value", lines: []string{"a=s; ss=1"}, want: []string{"a=s; ss=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Cookie": tt.lines}
			removeCookie(h, "s")
			if got := h["Cookie"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}
