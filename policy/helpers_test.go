package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// base is the fixed "now" of the tests; tokens are minted relative to it.
var base = jwttest.Now

const (
	issA = jwttest.IssuerA
	issB = jwttest.IssuerB
	aud  = jwttest.Audience
)

type signer = jwttest.Signer

func newSigner(t testing.TB, alg, kid string) signer { return jwttest.NewSigner(t, alg, kid) }

// claims are standard valid claims at base, for issuer iss.
func claims(iss string) jwt.MapClaims { return jwttest.Claims(iss) }

// with is c with each claim of the name/value pairs kv set (removed when
// the value is nil).
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// reasonOf is the reason of a refusal, "" for none, UNCLASSIFIED for an
// error that is not a *verifier.Error.
func reasonOf(err error) verifier.Reason {
	if err == nil {
		return ""
	}
	r, ok := verifier.ReasonOf(err)
	if !ok {
		return "UNCLASSIFIED"
	}
	return r
}

func mustKeys(t testing.TB, opts keys.KeyOptions, rec keys.KeyRecorder, sources ...*keys.Source) *keys.Keys {
	t.Helper()
	k, err := keys.NewKeys(opts, rec, nil, sources...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustVerifier(t testing.TB, o verifier.Options) *verifier.Verifier {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return base }
	}
	v, err := verifier.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func load(t testing.TB, k *keys.Keys) {
	t.Helper()
	if err := k.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}
