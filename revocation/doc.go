// Package revocation keeps a local list of revoked tokens and answers, on
// every request, whether a verified token is on it: the middle way between
// stateless verification (a revoked token works until it expires) and
// introspection (a round trip per request).
//
// A list names single tokens by (iss, jti) and whole subjects by (iss, sub,
// issued_before): every token of that subject issued before the time, as
// after "log out everywhere" or a compromised client. Entries carry the
// time after which they cover only expired tokens, so lists stay small.
// The format is Document; Parse reads it strictly.
//
// A Store reads lists from a file (a mounted ConfigMap, re-read when its
// stamp changes) and/or a URL polled with conditional requests, keeps the
// URL's last good list in a cache directory across restarts, and serves the
// last good list when a source fails: a revocation made during an outage is
// enforced only once the list can be read again (the same trade as keys;
// Status reports the age so that it can alert). LogoutHandler adds subject
// entries from OpenID Connect Back-Channel Logout 1.0 requests.
//
// Store.Revoked is a few map lookups on an immutable snapshot, lock-free and
// allocation-free whatever the list size.
package revocation
