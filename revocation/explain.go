package revocation

import "time"

// Match is one list entry that revokes a token, for explanations (jwt-sidecar
// explain); the request path uses Revoked, which builds nothing.
type Match struct {
	// Source is where the entry came from: a source's name (file:PATH or
	// the URL) or "backchannel" for back-channel logout.
	Source string
	// Token is set for an entry by (iss, jti); Subject for an entry by
	// (iss, sub) whose issued_before is after the token's iat.
	Token   *TokenEntry
	Subject *SubjectEntry
}

// Why returns every entry that revokes the token with these claims, in the
// order Revoked consults them; none when it is not revoked.
func (s *Store) Why(iss, jti, sub string, iat time.Time) []Match {
	var out []Match
	for i, l := range s.snap.Load().lists {
		if l == nil {
			continue
		}
		name := localSource
		if i > 0 {
			name = s.sources[i-1].name
		}
		if exp, ok := l.tokens[tokenKey{iss, jti}]; ok && jti != "" {
			out = append(out, Match{Source: name, Token: &TokenEntry{Issuer: iss, JTI: jti, Expiry: NumericDate{exp}}})
		}
		if r, ok := l.subjects[subjectKey{iss, sub}]; ok && sub != "" && (iat.IsZero() || iat.Before(r.before)) {
			out = append(out, Match{Source: name, Subject: &SubjectEntry{Issuer: iss, Subject: sub, IssuedBefore: NumericDate{r.before}, Expiry: NumericDate{r.exp}}})
		}
	}
	return out
}
