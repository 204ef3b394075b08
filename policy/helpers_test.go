package policy_test

import (
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// The test kit's names, as the tests of this package read them.
var (
	base         = jwttest.Now
	newSigner    = jwttest.NewSigner
	claims       = jwttest.Claims
	with         = jwttest.With
	mustKeys     = jwttest.Keys
	mustVerifier = jwttest.Verifier
	reasonOf     = jwttest.ReasonOf
)

const (
	issA = jwttest.IssuerA
	issB = jwttest.IssuerB
	aud  = jwttest.Audience
)

type signer = jwttest.Signer
