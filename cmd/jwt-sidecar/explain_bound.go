package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
)

// This file is explain's view of what stateless verification adds to a
// signature check: the sender constraint (cnf: DPoP, RFC 9449, and mTLS,
// RFC 8705) and the revocation list. The verdict still comes from the
// proxy's own decision; these sections say what the request must carry and
// which list entry revokes the token.

// claimsOf decodes a token's payload without verifying anything; nil when
// it is not a compact JWS with a JSON object payload.
func claimsOf(token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil {
		return nil
	}
	return m
}

// numericDate reads a NumericDate claim; zero when absent or not a date.
func numericDate(v any) time.Time {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || f <= 0 || f > 1e11 {
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// readCertificate reads the first certificate of a PEM file (--cert).
func readCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// presentCertificate makes r arrive as over TLS with cert as the client
// certificate, as the listener would see it.
func presentCertificate(r *http.Request, cert *x509.Certificate) {
	r.TLS = &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{cert}}
}

// sender says what the token's cnf requires of the request and, with a
// proof (--dpop) or a certificate (--cert), whether they fit, check by
// check. The verdict below is the proxy's own.
func (w *explainer) sender(a *app, r *http.Request, claims map[string]any, token, scheme, proof string, cert *x509.Certificate) {
	w.section("sender constraint (cnf)")
	raw, present := claims["cnf"]
	if !present {
		w.line("none: a bearer token (no cnf claim)")
		if strings.EqualFold(scheme, "DPoP") {
			w.line("sent with the DPoP scheme it is refused (dpop_mismatch): only a DPoP-bound token may use it")
		}
		return
	}
	cnf, err := dpop.ParseConfirmation(raw)
	if err != nil {
		w.line("present but unusable: %v; refused (dpop_mismatch) unless its provider sets ALLOW_SENDER_CONSTRAINED", err)
		return
	}
	if cnf.X5TS256 != "" {
		w.line("certificate-bound (RFC 8705): cnf.x5t#S256 %s", cnf.X5TS256)
		w.line("the request must come over TLS (TLS_CERT_FILE, TLS_CLIENT_CA_FILE) presenting the client certificate with that SHA-256 thumbprint")
		switch {
		case cert == nil:
			w.line("no --cert given: explained as a request without a client certificate (mtls_missing)")
		case dpop.CertThumbprint(cert) == cnf.X5TS256:
			w.line("--cert %s: thumbprint %s matches", cert.Subject, dpop.CertThumbprint(cert))
		default:
			w.line("--cert %s: thumbprint %s does NOT match (mtls_mismatch)", cert.Subject, dpop.CertThumbprint(cert))
		}
	}
	if cnf.JKT == "" {
		return
	}
	w.line("DPoP-bound (RFC 9449): cnf.jkt %s", cnf.JKT)
	s := a.rt.state.sender
	if s == nil || s.Checker == nil {
		w.line("DPoP proofs are checked only in jwt mode (AUTH_MODE=jwt): this sidecar refuses the token")
		return
	}
	target, err := dpop.NormalizeURI(s.Target.URI(r))
	if err != nil {
		target = s.Target.URI(r) + " (not a valid URI: " + err.Error() + ")"
	}
	w.line("the request must carry Authorization: DPoP <token> (as Bearer it is refused: dpop_bound_as_bearer)")
	w.line("and exactly one DPoP header: a proof (typ dpop+jwt, alg one of %s) signed by the key with that thumbprint, with", strings.Join(s.Checker.Algorithms(), " "))
	w.line("  htm %s", r.Method)
	w.line("  htu %s (query and fragment dropped; %s)", target, targetSource(a))
	w.line("  ath %s (the token's SHA-256, base64url)", dpop.TokenHash(token))
	w.line("  iat within the last %s (DPOP_PROOF_MAX_AGE) and at most %s ahead (CLOCK_SKEW); a jti never used before", a.cfg.DPoPProofMaxAge, a.cfg.ClockSkew)
	if s.Nonces != nil {
		w.line("  nonce: the last DPoP-Nonce the sidecar sent (DPOP_NONCE); a proof without one gets 401 use_dpop_nonce and a fresh one")
	}
	if proof == "" {
		w.line("no --dpop PROOF given: explained without a proof")
		return
	}
	p, err := dpop.ParseProof(proof, s.Checker.Algorithms())
	if err != nil {
		w.line("--dpop: not a valid proof: %v (dpop_invalid)", err)
		return
	}
	check := func(ok bool, what string, args ...any) {
		verdict := "ok"
		if !ok {
			verdict = "WRONG"
		}
		w.line("  %-5s "+what, append([]any{verdict}, args...)...)
	}
	w.line("--dpop proof, check by check:")
	check(p.JKT == cnf.JKT, "key thumbprint %s", p.JKT)
	check(p.HTM == r.Method, "htm %s", p.HTM)
	got, err := dpop.NormalizeURI(p.HTU)
	check(err == nil && got == target, "htu %s", p.HTU)
	check(p.ATH == dpop.TokenHash(token), "ath %s", orNone(p.ATH))
	age := w.now.Sub(p.IAT).Round(time.Second)
	check(age <= a.cfg.DPoPProofMaxAge && -age <= a.cfg.ClockSkew, "iat %s (%s old)", p.IAT.UTC().Format(time.RFC3339), age)
	if s.Nonces != nil {
		check(s.Nonces.Valid(p.Nonce, w.now), "nonce %s", orNone(p.Nonce))
	}
}

// targetSource says where the sidecar takes the htu's scheme and host from.
func targetSource(a *app) string {
	switch {
	case a.cfg.DPoPExternalURL != nil:
		return "scheme and host from DPOP_EXTERNAL_URL"
	case a.cfg.DPoPTrustForwarded:
		return "scheme and host from X-Forwarded-Proto/-Host when present, else the request's"
	}
	return "scheme and host as this request reaches the sidecar: --host, https with --cert"
}

// revocations loads the revocation list once, as the proxy does at start,
// and says whether it revokes the token and by which entry.
func (w *explainer) revocations(ctx context.Context, a *app, claims map[string]any) {
	w.section("revocation list")
	st := a.rt.state.store
	if st == nil {
		w.line("none configured (REVOCATION_FILE, REVOCATION_LIST_URL, BACKCHANNEL_LOGOUT_PATH): only expiry ends a token")
		return
	}
	_ = st.Refresh(ctx) // each source's error is in its status
	for _, s := range st.Status() {
		if !s.Loaded {
			w.line("%s: NOT loaded (%s): the proxy would not be ready and revokes nothing from it", s.Name, s.LastError)
			continue
		}
		w.line("%s: loaded, %d token and %d subject entries", s.Name, s.Tokens, s.Subjects)
	}
	if claims == nil {
		return
	}
	iss, _ := claims["iss"].(string)
	jti, _ := claims["jti"].(string)
	sub, _ := claims["sub"].(string)
	iat := numericDate(claims["iat"])
	matches := st.Why(iss, jti, sub, iat)
	for _, m := range matches {
		switch {
		case m.Token != nil:
			w.line("REVOKED by %s: the entry for jti %s of %s (kept until %s)", m.Source, m.Token.JTI, m.Token.Issuer, m.Token.Expiry.UTC().Format(time.RFC3339))
		case m.Subject != nil:
			when := "it has no iat"
			if !iat.IsZero() {
				when = "its iat is " + iat.Format(time.RFC3339)
			}
			w.line("REVOKED by %s: every token of subject %s of %s issued before %s (%s)", m.Source, m.Subject.Subject, m.Subject.Issuer,
				m.Subject.IssuedBefore.UTC().Format(time.RFC3339), when)
		}
	}
	if len(matches) == 0 {
		w.line("not revoked: no entry for jti %s nor for subject %s (of %s) issued after its iat", orNone(jti), orNone(sub), orNone(iss))
	}
}
