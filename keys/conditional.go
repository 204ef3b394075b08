package keys

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// RefreshNotModified is the result of a conditional refresh answered 304:
// the keys held are still the issuer's, and their freshness is renewed.
const RefreshNotModified = "not_modified"

// validators are what a server said about the last body it sent (RFC 9110
// §8.8): the next request for the same URL is conditional on them.
type validators struct{ etag, lastModified string }

// fetched is one answer of a conditional GET.
type fetched struct {
	raw         []byte
	notModified bool
	maxAge      time.Duration // Cache-Control max-age; 0 when absent
	from        string        // the URL whose validators describe raw
}

// fetch GETs target with the fetch timeout and the body size limit. When
// conditional, it sends the validators of the last answer for target
// (If-None-Match, If-Modified-Since; RFC 9110 §13.1), and a 304 is an
// answer without a body. A fetch from the issuer (not from a key relay)
// goes through the source's client, with its CA file and bearer token.
// Callers hold refreshMu.
func (s *Source) fetch(ctx context.Context, target string, conditional, fromIssuer bool) (fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch %s: %w", redact(target), err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	v := s.validators[target]
	if conditional {
		if v.etag != "" {
			req.Header.Set("If-None-Match", v.etag)
		}
		if v.lastModified != "" {
			req.Header.Set("If-Modified-Since", v.lastModified)
		}
	}
	client := s.client
	if fromIssuer {
		if err := s.authorize(req); err != nil {
			return fetched{}, fmt.Errorf("fetch %s: %w: %w", redact(target), ErrBearerTokenFile, err)
		}
	} else if s.relayC != nil {
		client = s.relayC
	}
	if wrap := s.env.opts.WrapTransport; wrap != nil {
		c := *client
		c.Transport = wrap(c.Transport)
		client = &c
	}
	resp, err := client.Do(req)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch %s: %w", redact(target), err)
	}
	defer resp.Body.Close()
	f := fetched{maxAge: maxAge(resp.Header), from: target}
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional && (v.etag != "" || v.lastModified != ""):
		f.notModified = true
		return f, nil
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fetched{}, fmt.Errorf("fetch %s: status %d: %w", redact(target), resp.StatusCode, errUnauthorized)
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fetched{}, fmt.Errorf("fetch %s: status %d", redact(target), resp.StatusCode)
	}
	limit := s.env.opts.MaxBytes
	f.raw, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fetched{}, fmt.Errorf("fetch %s: %w", redact(target), err)
	}
	if int64(len(f.raw)) > limit {
		return fetched{}, fmt.Errorf("fetch %s: body exceeds %d bytes", redact(target), limit)
	}
	if s.validators == nil {
		s.validators = map[string]validators{}
	}
	s.validators[target] = validators{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
	return f, nil
}

// maxAge reads Cache-Control max-age (RFC 9111 §5.2.2.1); no-store,
// no-cache or a malformed value count as none.
func maxAge(h http.Header) time.Duration {
	var age time.Duration
	for _, cc := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(cc, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0
				}
				age = time.Duration(min(n, int64(7*24*3600))) * time.Second
			}
		}
	}
	return age
}

// MaxAgeStretch bounds how far a server's max-age lengthens the refresh
// interval: between JWKS_REFRESH_INTERVAL and this many times it. A
// max-age never shortens the interval (that would be the fetch storm), and a
// long one cannot leave a withdrawn key trusted for hours.
const MaxAgeStretch = 4

// interval is the wait before the next scheduled refresh, given the last
// answer's max-age.
func (o *KeyOptions) interval(age time.Duration) time.Duration {
	return min(max(age, o.RefreshInterval), MaxAgeStretch*o.RefreshInterval)
}

// relayTarget is this source's URL at the key relay: the relay serves the
// key set of exactly the URL (or OIDC issuer) the sidecar itself would
// fetch, so the sidecar's own configuration still decides which issuers
// the keys verify. kid, when set, asks the relay to refetch for it.
func (s *Source) relayTarget(kid string) string {
	q := url.Values{}
	if s.kind == kindOIDC {
		q.Set("issuer", s.url)
	} else {
		q.Set("jwks", s.url)
	}
	if kid != "" {
		q.Set("kid", kid)
	}
	return strings.TrimRight(s.env.opts.RelayURL, "/") + RelayPath + "?" + q.Encode()
}

// RelayPath is where a key relay serves key sets.
const RelayPath = "/v1/jwks"

type kidKey struct{}

// withKID carries the kid an unknown-kid refetch is for, so the relay can
// refetch from the issuer for it.
func withKID(ctx context.Context, kid string) context.Context {
	return context.WithValue(ctx, kidKey{}, kid)
}

func kidOf(ctx context.Context) string {
	kid, _ := ctx.Value(kidKey{}).(string)
	return kid
}

// remoteRefresh fetches a remote source: from the relay when one is
// configured, else (or when the relay fails) from the issuer itself.
// Callers hold refreshMu.
func (s *Source) remoteRefresh(ctx context.Context, trigger string) error {
	if s.env.opts.RelayURL != "" {
		if s.validators == nil {
			s.validators = map[string]validators{}
		}
		// The kid is a query parameter: the validators are those of the
		// plain relay URL, shared by every kind of refresh.
		plain := s.relayTarget("")
		target := s.relayTarget(kidOf(ctx))
		if target != plain {
			s.validators[target] = s.validators[plain]
		}
		f, err := s.fetch(ctx, target, s.loaded.Load(), false)
		if target != plain {
			s.validators[plain] = s.validators[target]
			delete(s.validators, target)
			f.from = plain
		}
		if err == nil {
			return s.applyFetched(f, trigger)
		}
		s.env.log.Warn("key relay failed; fetching from the issuer", "source", s.name, "error", err)
	}
	if s.kind == kindOIDC && (s.jwksURL == "" || trigger != TriggerUnknownKID) {
		u, err := s.discover(ctx)
		if err != nil {
			s.env.rec.KeyRefresh(s.name, trigger, RefreshError)
			return err
		}
		s.jwksURL = u
	}
	target := s.url
	if s.kind == kindOIDC {
		target = s.jwksURL
	}
	f, err := s.fetch(ctx, target, s.loaded.Load(), true)
	if err != nil {
		s.env.rec.KeyRefresh(s.name, trigger, RefreshError)
		return err
	}
	return s.applyFetched(f, trigger)
}

// applyFetched installs a fetched answer and keeps it in the cache
// directory. Callers hold refreshMu.
func (s *Source) applyFetched(f fetched, trigger string) error {
	s.nextWait.Store(int64(s.env.opts.interval(f.maxAge)))
	raw := f.raw
	if f.notModified {
		s.env.rec.KeyRefresh(s.name, trigger, RefreshNotModified)
		if set := s.set.Load(); set != nil {
			now := time.Now()
			s.confirmed.Store(now.UnixNano())
			s.env.rec.KeysLoaded(s.name, set.n, now)
		}
		// A 304 renews the freshness a max-age gave: keep it across a
		// restart. Without one, the file already holds all there is.
		p := s.raw.Load()
		if f.maxAge == 0 || p == nil {
			return nil
		}
		raw = *p
	} else if err := s.applyJSON(raw, trigger, RefreshOK); err != nil {
		return err
	}
	if s.env.opts.CacheDir != "" {
		if err := s.saveToDisk(raw, f.from, f.maxAge); err != nil {
			s.env.log.Warn("could not write the key cache", "source", s.name, "error", err)
		}
	}
	return nil
}
