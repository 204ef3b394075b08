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

// saveToDisk writes the last good JWK Set atomically (rename), so a crash
// never leaves a half-written file for the next start.
func (s *Source) saveToDisk(raw []byte) error {
	return atomicfile.Write(s.cacheFile(), raw)
}

// loadFromDisk loads the JWK Set a previous run saved, so a sidecar
// restarted while the issuer is down still verifies.
func (s *Source) loadFromDisk() {
	raw, err := atomicfile.ReadLimited(s.cacheFile(), s.env.opts.MaxBytes)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		s.env.log.Warn("could not read the key cache", "source", s.name, "error", err)
		return
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if err := s.applyJSON(raw, TriggerStart, RefreshFromDisk); err != nil {
		s.env.log.Warn("ignoring an unusable key cache file", "source", s.name, "file", s.cacheFile(), "error", err)
		return
	}
	// Stale until the origin answers; the file's time says how old.
	if st, err := os.Stat(s.cacheFile()); err == nil {
		s.fetched.Store(st.ModTime().UnixNano())
	}
	s.failing.Store(true)
	s.env.log.Info("loaded cached keys from disk", "source", s.name, "keys", s.KeyCount())
}
