package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/atomicfile"
)

// source is one place a list comes from: a file or a URL.
type source struct {
	store *Store
	layer int    // its index in the snapshot
	name  string // for metrics and logs: file:PATH or the URL without secrets
	path  string // a file source
	url   string // a URL source

	loaded atomic.Bool

	mu           sync.Mutex // one refresh at a time; guards what follows
	stamp        fileStamp
	etag         string
	lastModified string
	lastSuccess  time.Time
	lastErr      error
	lastErrAt    time.Time
	errCount     int
	stale        bool // as last logged, so a change is logged once
	list         *List
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newFileSource(s *Store, layer int, path string) *source {
	return &source{store: s, layer: layer, name: "file:" + path, path: path}
}

func newURLSource(s *Store, layer int, raw string) (*source, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("revocation list URL %q is not an absolute http(s) URL", raw)
	}
	return &source{store: s, layer: layer, name: redact(u), url: raw}, nil
}

// redact drops userinfo, query and fragment from a URL used as a label.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// run loads the cache (URL sources), then refreshes every interval until
// ctx ends.
func (src *source) run(ctx context.Context) {
	o := src.store.opts
	wait := o.RefreshInterval
	if src.path != "" {
		wait = o.FilePoll
	} else if o.CacheDir != "" && !src.loaded.Load() {
		src.loadCache()
	}
	for {
		if err := src.refresh(ctx); err != nil && ctx.Err() == nil {
			o.Log.Warn("revocation list refresh failed; the last good list keeps serving",
				"source", src.name, "error", err, "age", src.status(o.Now()).Age.String())
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// jitter spreads the polls of many sidecars by ±10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// refresh reads the source once. A failure keeps the last good list.
func (src *source) refresh(ctx context.Context) error {
	src.mu.Lock()
	defer src.mu.Unlock()
	var err error
	if src.path != "" {
		err = src.readFile()
	} else {
		err = src.fetch(ctx)
	}
	now := src.store.opts.Now()
	if err != nil {
		src.lastErr, src.lastErrAt = err, now
		src.errCount++
	} else {
		src.lastErr = nil
		src.errCount = 0
	}
	src.logStaleness(now)
	return err
}

// succeed records that the content is known good at now and, with l, that
// l is the new list. src.mu is held.
func (src *source) succeed(l *List, now time.Time) {
	if l != nil {
		src.list = l
		src.store.install(src.layer, l)
	}
	src.lastSuccess = now
	src.loaded.Store(true)
	t, s := src.list.Len()
	src.store.opts.Recorder.Loaded(src.name, t, s, now)
}

func (src *source) readFile() error {
	o := src.store.opts
	st, err := os.Stat(src.path)
	if err != nil {
		o.Recorder.Fetch(src.name, FetchError)
		return fmt.Errorf("revocation file: %w", err)
	}
	now := o.Now()
	stamp := fileStamp{mod: st.ModTime(), size: st.Size()}
	if stamp == src.stamp && src.loaded.Load() {
		// The file is the truth and it has not changed: it is as fresh as now.
		o.Recorder.Fetch(src.name, FetchNotModified)
		src.succeed(nil, now)
		return nil
	}
	raw, err := atomicfile.ReadLimited(src.path, o.MaxBytes)
	if err != nil {
		o.Recorder.Fetch(src.name, FetchError)
		return fmt.Errorf("revocation file: %w", err)
	}
	l, err := Parse(raw, now, o.MaxBytes)
	if err != nil {
		o.Recorder.Fetch(src.name, FetchInvalid)
		return fmt.Errorf("revocation file %s: %w", src.path, err)
	}
	src.stamp = stamp
	o.Recorder.Fetch(src.name, FetchOK)
	src.succeed(l, now)
	return nil
}

// fetch makes one conditional GET (RFC 9110 §13.1: If-None-Match with the
// last ETag, If-Modified-Since with the last Last-Modified).
func (src *source) fetch(ctx context.Context) error {
	o := src.store.opts
	ctx, cancel := context.WithTimeout(ctx, o.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url, nil)
	if err != nil {
		o.Recorder.Fetch(src.name, FetchError)
		return fmt.Errorf("fetch %s: %w", src.name, err)
	}
	req.Header.Set("Accept", "application/json")
	if src.loaded.Load() {
		if src.etag != "" {
			req.Header.Set("If-None-Match", src.etag)
		}
		if src.lastModified != "" {
			req.Header.Set("If-Modified-Since", src.lastModified)
		}
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		o.Recorder.Fetch(src.name, FetchError)
		return fmt.Errorf("fetch %s: %w", src.name, err)
	}
	defer resp.Body.Close()
	now := o.Now()
	switch {
	case resp.StatusCode == http.StatusNotModified && src.loaded.Load():
		o.Recorder.Fetch(src.name, FetchNotModified)
		src.succeed(nil, now)
		return nil
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		o.Recorder.Fetch(src.name, FetchError)
		return fmt.Errorf("fetch %s: status %d", src.name, resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, o.MaxBytes+1))
	if err != nil {
		o.Recorder.Fetch(src.name, FetchError)
		return fmt.Errorf("fetch %s: %w", src.name, err)
	}
	l, err := Parse(raw, now, o.MaxBytes)
	if err != nil {
		o.Recorder.Fetch(src.name, FetchInvalid)
		return fmt.Errorf("fetch %s: %w", src.name, err)
	}
	src.etag = resp.Header.Get("ETag")
	src.lastModified = resp.Header.Get("Last-Modified")
	o.Recorder.Fetch(src.name, FetchOK)
	src.succeed(l, now)
	if o.CacheDir != "" {
		if err := src.saveCache(raw, now); err != nil {
			o.Log.Warn("could not write the revocation list cache", "source", src.name, "error", err)
		}
	}
	return nil
}

func (src *source) cacheFile() string {
	sum := sha256.Sum256([]byte(src.url))
	return filepath.Join(src.store.opts.CacheDir, "revocations-"+hex.EncodeToString(sum[:8])+".json")
}

// saveCache writes the cache file, the list as fetched with what makes the
// next request conditional and the time it was fetched (so the age stays
// honest across a restart): an atomicfile.Entry, as the key sets keep
// theirs, written atomically. src.mu is held.
func (src *source) saveCache(raw []byte, now time.Time) error {
	return atomicfile.WriteEntry(src.cacheFile(), atomicfile.Entry{URL: src.url, ETag: src.etag,
		LastModified: src.lastModified, FetchedAt: now.UTC(), Body: raw})
}

// loadCache installs the list a previous run saved, so a sidecar restarted
// while the list server is down still refuses what was revoked. Its age is
// the age it had: a cache from last week is stale at once.
func (src *source) loadCache() {
	o := src.store.opts
	c, err := atomicfile.ReadEntry(src.cacheFile(), o.MaxBytes)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var l *List
	if err == nil {
		l, err = Parse(c.Body, o.Now(), o.MaxBytes)
	}
	if err != nil {
		o.Log.Warn("ignoring an unusable revocation list cache", "source", src.name, "file", src.cacheFile(), "error", err)
		return
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	src.etag, src.lastModified = c.ETag, c.LastModified
	o.Recorder.Fetch(src.name, FetchFromDisk)
	src.succeed(l, c.FetchedAt)
	t, s := l.Len()
	o.Log.Info("loaded the cached revocation list", "source", src.name, "tokens", t, "subjects", s, "fetched_at", c.FetchedAt)
}

// logStaleness logs when the source becomes stale or fresh again. src.mu
// is held.
func (src *source) logStaleness(now time.Time) {
	st := src.statusLocked(now)
	if st.Stale == src.stale {
		return
	}
	src.stale = st.Stale
	if st.Stale {
		src.store.opts.Log.Error("revocation list is stale: revocations made since are not enforced",
			"source", src.name, "age", st.Age.String(), "last_success", st.LastSuccess, "error", st.LastError)
		return
	}
	src.store.opts.Log.Info("revocation list is fresh again", "source", src.name)
}

func (src *source) status(now time.Time) SourceStatus {
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.statusLocked(now)
}

func (src *source) statusLocked(now time.Time) SourceStatus {
	st := SourceStatus{Name: src.name, Loaded: src.loaded.Load(), LastSuccess: src.lastSuccess,
		LastErrorAt: src.lastErrAt, ConsecutiveErrors: src.errCount}
	st.Tokens, st.Subjects = src.list.Len()
	if src.lastErr != nil {
		st.LastError = src.lastErr.Error()
	}
	if st.Loaded {
		st.Age = now.Sub(src.lastSuccess)
		st.Stale = st.Age > src.store.opts.StaleAfter
	}
	return st
}
