package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/statuswriter"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// LogRecorder counts log lines the refusal rate limit dropped.
// *metrics.LogLines satisfies it.
type LogRecorder interface {
	LogLineDropped()
}

type nopLogRecorder struct{}

func (nopLogRecorder) LogLineDropped() {}

// OutcomeInternalError is the access log's outcome for a request the sidecar
// failed to authenticate through its own fault (500).
const OutcomeInternalError = "internal_error"

// accessEntry collects one request's access-log fields as the request
// passes through the chain. It exists only when ACCESS_LOG is on.
type accessEntry struct {
	start    time.Time
	upstream time.Duration
	status   int
	outcome  string
	reason   verifier.Reason
	rule     string
	provider string
	subject  string
	refusal  *verifier.Error // the refusal's detail for the line; never the token
}

type accessKey struct{}

// entryOf is r's access-log entry, or nil when the access log is off.
func entryOf(ctx context.Context) *accessEntry {
	e, _ := ctx.Value(accessKey{}).(*accessEntry)
	return e
}

// accessLog writes one line per request after it is answered. It runs
// inside requestID, so the ID is set; it is only in the chain when
// ACCESS_LOG is on, so the allowed path pays nothing when it is off.
func (p *Proxy) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := &accessEntry{start: time.Now()}
		sw := statuswriter.New(w)
		// Path and method are read now: the handlers below may change r.
		path, method := config.CleanPath(r.URL.Path), r.Method
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), accessKey{}, e)))
		e.status = sw.Status()
		p.writeAccess(r.Context(), r, method, path, e)
	})
}

// writeAccess logs e. A refusal is rate limited like the refusal line it
// replaces; a request that was let through is always logged (the audit
// trail).
func (p *Proxy) writeAccess(ctx context.Context, r *http.Request, method, path string, e *accessEntry) {
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("request_id", requestIDOf(r)),
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("status", e.status),
		slog.String("outcome", e.outcome),
		slog.String("reason", string(e.reason)),
		slog.String("rule", e.rule),
		slog.String("provider", e.provider),
		slog.String("subject", e.subject),
		slog.Duration("duration", time.Since(e.start)),
		slog.Duration("upstream_duration", e.upstream),
		slog.String("remote_addr", r.RemoteAddr),
	)
	if e.refusal != nil {
		n, ok := p.sampler.allow(time.Now())
		if !ok {
			p.logs.LogLineDropped()
			return
		}
		attrs = append(attrs,
			slog.String("kid", e.refusal.KID),
			slog.String("iss", e.refusal.Issuer),
			slog.String("token_hash", e.refusal.TokenHash),
			slog.Any("error", e.refusal.Err),
		)
		if n > 0 {
			attrs = append(attrs, slog.Int64("lines_dropped_before", n))
		}
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// noteDecision records the policy's decision in the access-log entry.
func (p *Proxy) noteDecision(e *accessEntry, pol *policy.Policy, d *policy.Decision) {
	if d.Rule != nil {
		e.rule = d.Rule.Name
	}
	switch {
	case d.Err != nil:
		return // refuse and internalError fill in outcome and reason
	case d.Public || d.Anonymous:
		e.outcome = string(verifier.Public)
		return
	}
	e.outcome = string(verifier.Allowed)
	provs := pol.Providers()
	e.provider = provs[d.First.Provider].Name
	e.subject = p.subject(&d.First.Claims)
}

// subject is the claim the access log names the caller by (sub unless
// ACCESS_LOG_SUBJECT_CLAIM says otherwise).
func (p *Proxy) subject(c *verifier.Claims) string {
	if p.subjectClaim == "" || p.subjectClaim == "sub" {
		return c.Subject
	}
	v, ok := c.Lookup(p.subjectClaim)
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// sampler is a token bucket for refusal log lines: rate lines per second,
// with a burst of one second's worth. A zero rate lets every line through.
// It counts what it drops, and the next line let through says how many.
type sampler struct {
	rate float64

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int64
}

func newSampler(rate float64) *sampler {
	return &sampler{rate: rate, tokens: max(rate, 1)}
}

// allow reports whether one more line may be written at now, and how many
// were dropped since the last line that was.
func (s *sampler) allow(now time.Time) (dropped int64, ok bool) {
	if s.rate <= 0 {
		return 0, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() {
		s.tokens = min(s.tokens+now.Sub(s.last).Seconds()*s.rate, max(s.rate, 1))
	}
	s.last = now
	if s.tokens < 1 {
		s.dropped++
		return 0, false
	}
	s.tokens--
	dropped, s.dropped = s.dropped, 0
	return dropped, true
}
