package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/revocation"
)

// Endpoints of this file, the `endpoint` label values.
const (
	endpointRevocations   = "revocations"
	endpointRevokeSubject = "revoke_subject"
)

// subjectRevocations are the "revoke every token of this subject" entries
// of /revoke-subject: each subject's time before which its tokens are
// revoked, kept until no token it covers can be valid (that time plus
// TOKEN_TTL).
type subjectRevocations struct {
	mu     sync.Mutex
	before map[string]time.Time
}

func newSubjectRevocations() *subjectRevocations {
	return &subjectRevocations{before: map[string]time.Time{}}
}

// add revokes the tokens of sub issued before before.
func (r *subjectRevocations) add(sub string, before time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if before.After(r.before[sub]) {
		r.before[sub] = before
	}
}

// live returns the entries still needed at now, dropping the others.
func (r *subjectRevocations) live(now time.Time, ttl time.Duration) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.before))
	for sub, before := range r.before {
		if now.After(before.Add(ttl)) {
			delete(r.before, sub)
			continue
		}
		out[sub] = before
	}
	return out
}

// covers reports whether a token of sub issued at iat is revoked.
func (r *subjectRevocations) covers(sub string, iat time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	before, ok := r.before[sub]
	return ok && iat.Before(before)
}

// subjectRevoked reports whether verified claims fall under a subject
// revocation; a token without iat cannot show it came after one.
func (s *server) subjectRevoked(claims jwt.MapClaims) bool {
	sub, _ := claims.GetSubject()
	if sub == "" {
		return false
	}
	var at time.Time
	if iat, err := claims.GetIssuedAt(); err == nil && iat != nil {
		at = iat.Time
	}
	return s.revokedSubjects.covers(sub, at)
}

// live returns the entries of the set still live at now with their
// deadlines.
func (s *expirySet[K]) live(now time.Time) map[K]time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[K]time.Time, len(s.until))
	for k, u := range s.until {
		if !now.After(u) {
			out[k] = u
		}
	}
	return out
}

// revocationDocument is what /revocations publishes now: every token
// /revoke revoked (by jti, until its exp) and every subject /revoke-subject
// revoked, in the format of package revocation. Tokens without jti (made by
// mint with an empty -jti) are revoked here by hash and cannot be published.
func (s *server) revocationDocument() revocation.Document {
	now := s.now()
	doc := revocation.Document{Version: revocation.Version}
	for k, exp := range s.revoked.live(now) {
		if k.jti != "" {
			doc.Tokens = append(doc.Tokens, revocation.TokenEntry{Issuer: s.cfg.IssuerURL, JTI: k.jti, Expiry: revocation.NewNumericDate(exp)})
		}
	}
	for sub, before := range s.revokedSubjects.live(now, s.cfg.TokenTTL) {
		doc.Subjects = append(doc.Subjects, revocation.SubjectEntry{Issuer: s.cfg.IssuerURL, Subject: sub,
			IssuedBefore: revocation.NewNumericDate(before), Expiry: revocation.NewNumericDate(before.Add(s.cfg.TokenTTL))})
	}
	return doc
}

// handleRevocations publishes the revocation list. The body is canonical
// (sorted entries, no timestamp), so its hash is a strong ETag that changes
// only when the list does; a poller that sends it back in If-None-Match
// gets 304 and no body (RFC 9110 §13.1.2). The list is public, like the
// JWKS: it names jtis and subjects, never tokens.
func (s *server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	doc := s.revocationDocument()
	l, err := revocation.Parse(mustJSON(doc), s.now(), 0) // sorts and merges
	if err != nil {
		s.log.Error("build revocation list", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	body := append(mustJSON(l.Document()), '\n')
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache") // always revalidate
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// mustJSON encodes a value whose encoding cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// etagMatches is the weak comparison of If-None-Match (RFC 9110 §13.1.2):
// any listed tag, W/ or not, or "*".
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}

// handleRevokeSubject revokes every token of a subject issued up to now,
// for the demo's "log out everywhere". The client authenticates as at
// /token and may revoke only its own subject (its tokens' sub is its
// client_id); sub may be omitted. Tokens carry whole-second iat, so the
// time is rounded up to the next second: every token issued in the second
// of the revocation is covered, those before it included.
func (s *server) handleRevokeSubject(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		s.tokenError(w, http.StatusBadRequest, errInvalidRequest, err.Error())
		return
	}
	clientID, ok := s.authenticate(w, r, form)
	if !ok {
		return
	}
	sub := form.Get("sub")
	if sub == "" {
		sub = clientID
	}
	if sub != clientID {
		s.log.Warn("subject revocation refused: another client's subject", "client_id", clientID, "sub", sub)
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "a client may revoke only the tokens of its own subject")
		return
	}
	before := s.now().Truncate(time.Second).Add(time.Second)
	s.revokedSubjects.add(sub, before)
	s.metrics.revocations.Inc()
	s.log.Info("revoked every token of a subject", "client_id", clientID, "sub", sub, "issued_before", before)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
