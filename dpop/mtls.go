package dpop

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
)

// Confirmation is a token's cnf claim (RFC 7800): the key or certificate
// the token is bound to.
type Confirmation struct {
	// JKT is cnf.jkt, the RFC 7638 thumbprint of the DPoP key (RFC 9449 §6).
	JKT string
	// X5TS256 is cnf."x5t#S256", the SHA-256 thumbprint of the client
	// certificate (RFC 8705 §3.1).
	X5TS256 string
}

// Bound reports whether the token is sender-constrained in a way this
// package checks.
func (c Confirmation) Bound() bool { return c.JKT != "" || c.X5TS256 != "" }

// ParseConfirmation reads the cnf claim's value as a verifier decodes it
// (nil when absent). A cnf that is present but unusable (not an object, a
// member that is not a non-empty string, or no member this package knows)
// is an error: a sender constraint must never be ignored silently.
func ParseConfirmation(cnf any) (Confirmation, error) {
	if cnf == nil {
		return Confirmation{}, nil
	}
	m, ok := cnf.(map[string]any)
	if !ok {
		return Confirmation{}, errors.New("cnf is not a JSON object")
	}
	var c Confirmation
	for name, dst := range map[string]*string{"jkt": &c.JKT, "x5t#S256": &c.X5TS256} {
		v, ok := m[name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok || s == "" {
			return Confirmation{}, fmt.Errorf("cnf.%s is not a non-empty string", name)
		}
		*dst = s
	}
	if !c.Bound() {
		return Confirmation{}, errors.New("cnf names no key this server can check (jkt or x5t#S256)")
	}
	return c, nil
}

// CertThumbprint is base64url(SHA-256(DER)) of a certificate, the value of
// cnf."x5t#S256" (RFC 8705 §3.1).
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CheckCertificate checks an mTLS-bound token (RFC 8705 §3): the client
// certificate presented on the connection (peer[0] of
// tls.ConnectionState.PeerCertificates) must be the one whose thumbprint
// is x5t. The listener's TLS config decides whether the certificate chain
// is verified; the binding holds either way, since only the key holder
// can complete the handshake.
func CheckCertificate(x5t string, peer []*x509.Certificate) error {
	if len(peer) == 0 {
		return fail(CertMissing, "no client certificate on the connection")
	}
	if !equal(CertThumbprint(peer[0]), x5t) {
		return fail(CertMismatch, "the client certificate's thumbprint is not cnf.x5t#S256")
	}
	return nil
}
