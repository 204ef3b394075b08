// Package verifytest builds real verifiers over real keys for tests, and
// reads their refusals. It is apart from jwttest so that the key sources'
// tests can make tokens without importing the verifier.
package verifytest

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// With is c with each claim of the name/value pairs kv set (removed when
// the value is nil). c itself is not changed.
func With(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// Keys is keys.NewKeys over sources, loaded once, or the test fails.
func Keys(t testing.TB, opts keys.KeyOptions, rec keys.KeyRecorder, sources ...*keys.Source) *keys.Keys {
	t.Helper()
	k, err := keys.NewKeys(opts, rec, nil, sources...)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k
}

// Verifier is verifier.New with Now as its clock unless o sets one, or the
// test fails.
func Verifier(t testing.TB, o verifier.Options) *verifier.Verifier {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return jwttest.Now }
	}
	v, err := verifier.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ReasonOf is the reason of a refusal: "" for none, UNCLASSIFIED for an
// error that is not a *verifier.Error (a fault, never a refusal).
func ReasonOf(err error) verifier.Reason {
	if err == nil {
		return ""
	}
	r, ok := verifier.ReasonOf(err)
	if !ok {
		return "UNCLASSIFIED"
	}
	return r
}
