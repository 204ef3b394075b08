package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// TestKeyFilesThatAreNotKeys: a JWKS_FILE that is no key set, or a
// PUBLIC_KEY_FILES entry that is no PEM key, stops the real binary at
// start and check-config with exit 2 and says what is wrong, in the
// environment and in a CONFIG_FILE (at the field's line).
func TestKeyFilesThatAreNotKeys(t *testing.T) {
	dir := t.TempDir()
	signer := jwttest.NewSigner(t, "ES256", "k1")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemFile := filepath.Join(dir, "idp.pem")
	writePEM(t, pemFile, signer)
	one := string(jwttest.JWKS(t, signer))
	single := one[strings.Index(one, "[")+1 : strings.LastIndex(one, "]")]
	tests := []struct {
		name, file, want string
	}{
		{"a PEM file", pemFile, "is a PEM file, not a JWK Set: name PEM public keys in PUBLIC_KEY_FILES"},
		{"an empty object", write("empty.json", "{}"), `has no "keys" array: not a JWK Set`},
		{"a single JWK", write("one.json", single), `is a single JWK, not a JWK Set: wrap it as {"keys": [ ... ]}`},
		{"not JSON", write("garbage.json", "keys: []"), "is not a JSON object, so not a JWK Set"},
		{"keys not an array", write("obj.json", `{"keys": {}}`), `"keys" is not an array`},
		{"no usable key", write("enc.json", `{"keys": [{"kty": "oct", "k": "c2VjcmV0", "use": "enc"}]}`), "holds 1 keys, none usable"},
		{"an empty file", write("zero.json", ""), "is empty: want a JWK Set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{"UPSTREAM_URL=http://127.0.0.1:1", "ISSUERS=https://idp.test", "JWKS_FILE=" + tt.file}
			for _, args := range [][]string{{"check-config"}, nil} {
				code, _, errOut := runBinary(t, env, "", args...)
				if code != 2 || !strings.Contains(errOut, "JWKS_FILE: "+tt.file) || !strings.Contains(errOut, tt.want) {
					t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 and %q", args, code, errOut, tt.want)
				}
			}
		})
	}
	// The good file passes; a PUBLIC_KEY_FILES entry that is JSON fails.
	good := write("good.json", one)
	if code, out, errOut := runBinary(t, []string{"UPSTREAM_URL=http://127.0.0.1:1", "ISSUERS=https://idp.test", "JWKS_FILE=" + good}, "", "check-config"); code != 0 {
		t.Errorf("a good JWKS_FILE: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := runBinary(t, []string{"UPSTREAM_URL=http://127.0.0.1:1", "ISSUERS=https://idp.test", "PUBLIC_KEY_FILES=" + good}, "", "check-config")
	if code != 2 || !strings.Contains(errOut, "PUBLIC_KEY_FILES: "+good+": no PEM public key found") {
		t.Errorf("a JWKS as PUBLIC_KEY_FILES: exit %d\n%s", code, errOut)
	}
	// The same in a CONFIG_FILE: the line of the provider.
	policy := write("policy.yaml", "providers:\n  - name: idp\n    issuer: https://idp.test\n    jwks_file: "+pemFile+"\n")
	code, _, errOut = runBinary(t, []string{"UPSTREAM_URL=http://127.0.0.1:1", "CONFIG_FILE=" + policy}, "", "check-config")
	if code != 2 || !strings.Contains(errOut, "policy.yaml:4: providers[0].jwks_file: ") || !strings.Contains(errOut, "is a PEM file") {
		t.Errorf("CONFIG_FILE jwks_file that is PEM: exit %d\n%s", code, errOut)
	}
}
