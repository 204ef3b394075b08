package policy_test

import (
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/verifytest"
)

// The test kit's names, as the tests of this package read them.
var (
	base         = jwttest.Now
	newSigner    = jwttest.NewSigner
	claims       = jwttest.Claims
	with         = verifytest.With
	mustKeys     = verifytest.Keys
	mustVerifier = verifytest.Verifier
	reasonOf     = verifytest.ReasonOf
)

const (
	issA = jwttest.IssuerA
	issB = jwttest.IssuerB
	aud  = jwttest.Audience
)

type signer = jwttest.Signer
