package verifier_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// FuzzVerify feeds arbitrary tokens and Authorization headers through the
// whole verifier: every refusal must be a classified *verifier.Error, and
// nothing may panic. Seeds live in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	k := newSigner(f, "ES256", "k1")
	src, err := keys.NewStaticSource("s", []string{issA}, []keys.StaticKey{{KID: k.KID, Key: k.Key.Public()}})
	if err != nil {
		f.Fatal(err)
	}
	keys := mustKeys(f, keys.KeyOptions{}, nil, src)
	load(f, keys)
	v := mustVerifier(f, verifier.Options{Keys: keys, Audiences: []string{aud}, RequireExp: true, CacheSize: 16})
	f.Add("Bearer " + k.Sign(f, claims(issA)))
	f.Add("Bearer e30.e30.")
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")
	f.Add("bearer    a.b.c")
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodGet, "http://sidecar/", nil)
		r.Header["Authorization"] = []string{header}
		var e *verifier.Error
		if _, err := v.Verify(t.Context(), r); err != nil && !errors.As(err, &e) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
