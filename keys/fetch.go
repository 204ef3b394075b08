package keys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/atomicfile"
)

// discover reads the OpenID Connect discovery document and returns jwks_uri.
// OpenID Connect Discovery §4.3: the document's issuer must equal the
// configured one exactly, trailing slash included.
func (s *Source) discover(ctx context.Context) (string, error) {
	f, err := s.fetch(ctx, wellKnown(s.url), s.jwksURL != "", true)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if f.notModified {
		return s.jwksURL, nil
	}
	raw := f.raw
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", fmt.Errorf("discovery: not a JSON document: %w", err)
	}
	if doc.Issuer != s.url {
		return "", fmt.Errorf("discovery: issuer %q does not equal the configured %q", doc.Issuer, s.url)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("discovery: jwks_uri %q is not an absolute http(s) URL", doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}

// wellKnown builds the discovery URL: the issuer, without a trailing slash,
// followed by /.well-known/openid-configuration (Discovery §4).
func wellKnown(issuer string) string {
	for len(issuer) > 0 && issuer[len(issuer)-1] == '/' {
		issuer = issuer[:len(issuer)-1]
	}
	return issuer + "/.well-known/openid-configuration"
}

func (s *Source) cacheFile() string {
	sum := sha256.Sum256([]byte(s.name))
	return filepath.Join(s.env.opts.CacheDir, "jwks-"+hex.EncodeToString(sum[:8])+".json")
}

// saveToDisk keeps the last good JWK Set on disk with the validators of
// the URL it came from (an atomicfile.Entry, written atomically), and, when
// the answer had a max-age, until when it is fresh. Callers hold refreshMu.
func (s *Source) saveToDisk(raw []byte, from string, maxAge time.Duration) error {
	now := time.Now()
	v := s.validators[from]
	e := atomicfile.Entry{URL: from, ETag: v.etag, LastModified: v.lastModified, FetchedAt: now.UTC(), Body: raw}
	if maxAge > 0 {
		e.Expires = now.Add(s.env.opts.interval(maxAge)).UTC()
	}
	return atomicfile.WriteEntry(s.cacheFile(), e)
}

// loadFromDisk loads the JWK Set a previous run saved, so a sidecar
// restarted while the issuer is down still verifies, and the validators it
// was served with, so the first fetch after a restart is conditional (a
// fleet restarted at once costs the issuer 304s, not a full answer each).
// It returns how long the set stays fresh by the max-age it was served
// with (0: refresh now).
func (s *Source) loadFromDisk() time.Duration {
	e, err := atomicfile.ReadEntry(s.cacheFile(), s.env.opts.MaxBytes)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		s.env.log.Warn("could not read the key cache", "source", s.name, "error", err)
		return 0
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	// The "keys loaded" line (result from_disk) says what was loaded.
	if err := s.applyJSON(e.Body, TriggerStart, RefreshFromDisk); err != nil {
		s.env.log.Warn("ignoring an unusable key cache file", "source", s.name, "file", s.cacheFile(), "error", err)
		return 0
	}
	// Stale until the origin answers.
	s.failing.Store(true)
	// The keys were last confirmed when they were fetched, not now: the
	// stale-keys alerts must not be fooled by a restart.
	if !e.FetchedAt.IsZero() {
		s.confirmed.Store(e.FetchedAt.UnixNano())
		s.env.rec.KeysLoaded(s.name, s.KeyCount(), e.FetchedAt)
	}
	if e.URL != "" && e.Conditional() {
		if s.validators == nil {
			s.validators = map[string]validators{}
		}
		s.validators[e.URL] = validators{etag: e.ETag, lastModified: e.LastModified}
	}
	fresh := time.Until(e.Expires)
	if e.Expires.IsZero() || fresh <= 0 {
		return 0
	}
	return min(fresh, MaxAgeStretch*s.env.opts.RefreshInterval)
}
