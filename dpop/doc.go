// Package dpop checks sender-constrained access tokens: DPoP proofs (RFC
// 9449) and mTLS certificate binding (RFC 8705).
//
// A verifier that has verified a token reads its cnf claim
// (ParseConfirmation) and, for cnf.jkt, calls Checker.CheckToken with the
// request's method, target URI (Target.URI), DPoP header values, the token
// and the Authorization scheme it came with; for cnf."x5t#S256" it calls
// CheckCertificate with the connection's peer certificates. Refusals are
// *Error values whose Reason maps into the verifier's taxonomy; Challenge
// builds the WWW-Authenticate value (RFC 9449 §7.1). A token endpoint calls
// Checker.CheckProof (§5) and binds the token to the proof's JKT.
//
// Nothing here imports the rest of the project.
package dpop
