package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestMintEveryAlg mints with every alg and verifies the token with
// golang-jwt against the output of `jwks` for the same key file.
func TestMintEveryAlg(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range allAlgs() {
		t.Run(alg, func(t *testing.T) {
			path := writeKey(t, dir, alg)
			tok := strings.TrimSuffix(runCLI(t, "mint", "-key", path, "-alg", alg, "-scope", "read write"), "\n")
			if strings.ContainsAny(tok, " \n") {
				t.Fatalf("mint output is not one token and a newline: %q", tok)
			}
			keyfunc := keyfuncFromJWKS(t, []byte(runCLI(t, "jwks", "-key", path, "-alg", alg)))
			claims := jwt.MapClaims{}
			parsed, err := jwt.ParseWithClaims(tok, claims, keyfunc,
				jwt.WithValidMethods([]string{alg}),
				jwt.WithIssuer("http://127.0.0.1:8080"),
				jwt.WithAudience("demo-api"),
				jwt.WithSubject("demo"),
				jwt.WithExpirationRequired(),
				jwt.WithIssuedAt(),
			)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if parsed.Header["alg"] != alg {
				t.Errorf("alg = %v, want %s", parsed.Header["alg"], alg)
			}
			if claims["scope"] != "read write" {
				t.Errorf("scope = %v, want read write", claims["scope"])
			}
		})
	}
}

// TestMintDefaultAlg checks the alg derived from the key type.
func TestMintDefaultAlg(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"RS256", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			path := writeKey(t, dir, alg)
			keyfunc := keyfuncFromJWKS(t, []byte(runCLI(t, "jwks", "-key", path)))
			tok := strings.TrimSpace(runCLI(t, "mint", "-key", path))
			parsed, err := jwt.Parse(tok, keyfunc, jwt.WithValidMethods([]string{alg}))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if parsed.Header["alg"] != alg {
				t.Errorf("alg = %v, want %s", parsed.Header["alg"], alg)
			}
		})
	}
}

// decode returns the JOSE header and the payload of tok, unverified.
func decode(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, v := range []*map[string]any{&header, &payload} {
		dec := json.NewDecoder(bytes.NewReader(b64(t, parts[i])))
		dec.UseNumber()
		if err := dec.Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

func TestMintClaimsAndHeaders(t *testing.T) {
	path := writeKey(t, t.TempDir(), "ES256")
	s, err := readPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := thumbprint(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	mint := func(t *testing.T, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := runMint(append([]string{"-key", path}, args...), &stdout, &stderr, now); err != nil {
			t.Fatalf("mint %v: %v %s", args, err, stderr.String())
		}
		return stdout.String()
	}

	tests := []struct {
		name        string
		args        []string
		wantHeader  map[string]string // JSON of each member; "" means absent
		wantPayload map[string]string
	}{
		{
			name:        "defaults",
			wantHeader:  map[string]string{"alg": `"ES256"`, "typ": `"JWT"`, "kid": `"` + kid + `"`},
			wantPayload: map[string]string{"iss": `"http://127.0.0.1:8080"`, "sub": `"demo"`, "aud": `"demo-api"`, "iat": "1700000000", "exp": "1700000600", "nbf": "", "scope": ""},
		},
		{
			name:        "explicit jti",
			args:        []string{"-jti", "token-1"},
			wantPayload: map[string]string{"jti": `"token-1"`},
		},
		{
			name:        "empty jti omits it",
			args:        []string{"-jti", ""},
			wantPayload: map[string]string{"jti": ""},
		},
		{
			name:        "several audiences are an array",
			args:        []string{"-aud", "a,b"},
			wantPayload: map[string]string{"aud": `["a","b"]`},
		},
		{
			name:        "empty values omit claims",
			args:        []string{"-iss", "", "-sub", "", "-aud", "", "-ttl", "0"},
			wantPayload: map[string]string{"iss": "", "sub": "", "aud": "", "exp": ""},
		},
		{
			name:        "time offsets",
			args:        []string{"-ttl", "-1h", "-nbf", "5m", "-iat", "-30s"},
			wantPayload: map[string]string{"exp": "1699996400", "nbf": "1700000300", "iat": "1699999970"},
		},
		{
			name: "claims are JSON when valid, else strings; dotted names stay flat",
			args: []string{
				"-claim", `realm_access.roles=["admin","ops"]`, "-claim", "n=42", "-claim", "f=1700000000.5",
				"-claim", "word=hello", "-claim", `obj={"a":true}`, "-claim", "empty=", "-claim", "exp=1700000600.25",
			},
			wantPayload: map[string]string{
				"realm_access.roles": `["admin","ops"]`, "n": "42", "f": "1700000000.5", "word": `"hello"`,
				"obj": `{"a":true}`, "empty": `""`, "exp": "1700000600.25",
			},
		},
		{
			name:       "headers",
			args:       []string{"-header", `crit=["exp"]`, "-header", "typ=at+jwt", "-kid", "custom"},
			wantHeader: map[string]string{"crit": `["exp"]`, "typ": `"at+jwt"`, "kid": `"custom"`},
		},
		{
			name:       "no kid",
			args:       []string{"-kid", "", "-no-kid"},
			wantHeader: map[string]string{"kid": ""},
		},
		{
			name:       "no kid alone",
			args:       []string{"-no-kid"},
			wantHeader: map[string]string{"kid": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, payload := decode(t, mint(t, tt.args...))
			check := func(what string, got map[string]any, want map[string]string) {
				for name, w := range want {
					v, ok := got[name]
					switch {
					case w == "" && ok:
						t.Errorf("%s %s = %v, want absent", what, name, v)
					case w == "":
					case !ok:
						t.Errorf("%s %s absent, want %s", what, name, w)
					default:
						b, err := json.Marshal(v)
						if err != nil {
							t.Fatal(err)
						}
						if string(b) != w {
							t.Errorf("%s %s = %s, want %s", what, name, b, w)
						}
					}
				}
			}
			check("header", header, tt.wantHeader)
			check("payload", payload, tt.wantPayload)
		})
	}
}

func TestMintErrors(t *testing.T) {
	dir := t.TempDir()
	rsaKey, ecKey := writeKey(t, dir, "RS256"), writeKey(t, dir, "ES256")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no key", args: nil, wantCode: 1, wantErr: "-key is required"},
		{name: "empty kid without -no-kid", args: []string{"-key", ecKey, "-kid", ""}, wantCode: 1, wantErr: "-no-kid"},
		{name: "kid and no-kid", args: []string{"-key", ecKey, "-kid", "x", "-no-kid"}, wantCode: 1, wantErr: "contradict"},
		{name: "curve mismatch", args: []string{"-key", ecKey, "-alg", "ES384"}, wantCode: 1, wantErr: "does not fit"},
		{name: "rsa with ES256", args: []string{"-key", rsaKey, "-alg", "ES256"}, wantCode: 1, wantErr: "does not fit"},
		{name: "hmac", args: []string{"-key", rsaKey, "-alg", "HS256"}, wantCode: 1, wantErr: "does not fit"},
		{name: "none", args: []string{"-key", rsaKey, "-alg", "none"}, wantCode: 1, wantErr: "does not fit"},
		{name: "bad claim", args: []string{"-key", ecKey, "-claim", "novalue"}, wantCode: 2, wantErr: "not name=value"},
		{name: "unknown flag", args: []string{"-key", ecKey, "-bogus"}, wantCode: 2, wantErr: "-bogus"},
		{name: "missing file", args: []string{"-key", dir + "/missing"}, wantCode: 1, wantErr: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"mint"}, tt.args...), &stdout, &stderr, nil)
			if code != tt.wantCode {
				t.Errorf("exit = %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to mention %q", stderr.String(), tt.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

// TestJWKSSeveralKeys checks that jwks lists every key, with kid, alg and
// use=sig, and no private members.
func TestJWKSSeveralKeys(t *testing.T) {
	dir := t.TempDir()
	paths := []string{writeKey(t, dir, "RS256"), writeKey(t, dir, "ES256"), writeKey(t, dir, "EdDSA")}
	out := runCLI(t, "jwks", "-key", paths[0], "-key", paths[1], "-key", paths[2])
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3 {
		t.Fatalf("got %d keys, want 3", len(set.Keys))
	}
	for i, want := range []string{"RS256", "ES256", "EdDSA"} {
		k := set.Keys[i]
		s, err := readPrivateKey(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		kid, err := thumbprint(s.Public())
		if err != nil {
			t.Fatal(err)
		}
		if k["alg"] != want || k["use"] != "sig" || k["kid"] != kid {
			t.Errorf("key %d = %v, want alg %s, use sig, kid %s", i, k, want, kid)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %d has private member %q", i, private)
			}
		}
	}
}

// TestMintFreshJTI checks that every minted token carries its own jti, so
// that /revoke can name it.
func TestMintFreshJTI(t *testing.T) {
	path := writeKey(t, t.TempDir(), "ES256")
	seen := map[string]bool{}
	for range 3 {
		_, payload := decode(t, runCLI(t, "mint", "-key", path))
		jti, _ := payload["jti"].(string)
		if len(jti) < 16 || seen[jti] {
			t.Fatalf("jti = %q, want a fresh random value (seen %v)", jti, seen)
		}
		seen[jti] = true
	}
}
