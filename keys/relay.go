package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Relay serves the key sets of a fixed list of sources to sidecars, so a
// fleet fetches each issuer's keys once (docs/kubernetes.md, "Keys without
// a fetch storm"). It is a cache, not an authority: a sidecar asks for the
// URL (?jwks=) or OIDC issuer (?issuer=) of a source of its own
// configuration, and binds what it gets to that source's issuers, so the
// relay cannot make a sidecar accept keys for another issuer. It serves
// only the sources it was configured with, so it is no open proxy, and it
// never serves private key material (only what the issuer published).
//
// The sources are run by a Keys (NewKeys, Run), which keeps them fresh
// with conditional requests. A ?kid= the relay does not hold triggers the
// sources' unknown-kid refetch (one shared fetch, at most once per
// cooldown), so a rotated key reaches every sidecar after one issuer fetch.
type Relay struct {
	byKey map[string]*Source // "jwks\x00URL" or "issuer\x00URL"
	// MaxAge is the Cache-Control max-age sent with a key set, in seconds;
	// the sidecar clamps it to its own bounds. 0 sends none.
	MaxAge int
	// Recorder counts the requests served; nil counts nothing.
	Recorder RelayRecorder
	// StaleAfter, when positive, bounds the age of the keys passed on: a
	// source whose issuer has not confirmed its keys (a 200 or a 304) for
	// longer is answered 503, so the sidecars fetch from the issuer
	// themselves instead of trusting a relay that has lost it.
	StaleAfter time.Duration
}

// RelayRecorder receives one call per request a Relay answers: the
// source's name ("" when refused before one was found), the status code
// and a Relay* cache value. *metrics.Relay satisfies it.
type RelayRecorder interface {
	RelayRequest(source, status, cache string)
}

// The cache label values of RelayRecorder.RelayRequest.
const (
	RelayHit  = "hit"  // served from the keys held
	RelayMiss = "miss" // the kid asked for was not held: the relay went to the issuer (or its cooldown said no)
	RelayNone = "none" // refused before any key set was looked at
)

type nopRelayRecorder struct{}

func (nopRelayRecorder) RelayRequest(string, string, string) {}

// NewRelay serves sources (remote or OIDC ones; others are ignored).
func NewRelay(sources ...*Source) *Relay {
	r := &Relay{byKey: map[string]*Source{}, Recorder: nopRelayRecorder{}}
	for _, s := range sources {
		switch s.kind {
		case kindRemote:
			r.byKey["jwks\x00"+s.url] = s
		case kindOIDC:
			r.byKey["issuer\x00"+s.url] = s
		}
	}
	return r
}

func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rec := r.Recorder
	if rec == nil {
		rec = nopRelayRecorder{}
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		rec.RelayRequest("", "405", RelayNone)
		return
	}
	q := req.URL.Query()
	var src *Source
	switch {
	case len(q["jwks"]) == 1 && len(q["issuer"]) == 0:
		src = r.byKey["jwks\x00"+q.Get("jwks")]
	case len(q["issuer"]) == 1 && len(q["jwks"]) == 0:
		src = r.byKey["issuer\x00"+q.Get("issuer")]
	default:
		http.Error(w, "want exactly one of ?jwks=URL or ?issuer=URL", http.StatusBadRequest)
		rec.RelayRequest("", "400", RelayNone)
		return
	}
	if src == nil {
		http.Error(w, "this relay does not serve that key source", http.StatusNotFound)
		rec.RelayRequest("", "404", RelayNone)
		return
	}
	cache := RelayHit
	if kid := q.Get("kid"); kid != "" && len(kid) <= 256 && !src.hasKID(kid) {
		// Bounded by the source's cooldown and fetch wait.
		cache = RelayMiss
		src.refetchForKID(req.Context(), kid)
	}
	p := src.raw.Load()
	if p == nil {
		http.Error(w, "the key source has not loaded yet", http.StatusServiceUnavailable)
		rec.RelayRequest(src.name, "503", cache)
		return
	}
	if r.StaleAfter > 0 && time.Since(time.Unix(0, src.confirmed.Load())) > r.StaleAfter {
		http.Error(w, "the relay's keys for this source are stale: fetch from the issuer", http.StatusServiceUnavailable)
		rec.RelayRequest(src.name, "503", cache)
		return
	}
	raw := *p
	sum := sha256.Sum256(raw)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Content-Type", "application/jwk-set+json")
	if r.MaxAge > 0 {
		h.Set("Cache-Control", "max-age="+strconv.Itoa(r.MaxAge))
	}
	if matches(req.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		rec.RelayRequest(src.name, "304", cache)
		return
	}
	rec.RelayRequest(src.name, "200", cache)
	h.Set("Content-Length", strconv.Itoa(len(raw)))
	if req.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(raw)
}

// matches reports whether an If-None-Match list names etag (weak
// comparison, RFC 9110 §13.1.2).
func matches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}

// hasKID reports whether the source holds a key with this kid.
func (s *Source) hasKID(kid string) bool {
	set := s.set.Load()
	if set == nil {
		return false
	}
	for id := range set.ids {
		if strings.HasPrefix(id, kid+"|") {
			return true
		}
	}
	return false
}
