package keys

import (
	"log/slog"
	"slices"
	"strings"
	"time"
)

// kidsOf lists the keys of set by kid, sorted; a key without a kid is named
// by its fingerprint, so that it can be told apart in a log line.
func kidsOf(set *keySet) []string {
	out := make([]string, 0, len(set.ids))
	for id := range set.ids {
		out = append(out, displayID(id))
	}
	slices.Sort(out)
	return out
}

// displayID turns a set id ("kid|fingerprint") into what a log shows: the
// kid, or "fingerprint" in brackets when the key has none.
func displayID(id string) string {
	kid, fp, _ := strings.Cut(id, "|")
	if kid != "" {
		return kid
	}
	return "[" + fp + "]"
}

// diffKeys lists the keys new has and old lacks, and the reverse. A kid
// republished with other key material counts as removed and added.
func diffKeys(old, new *keySet) (added, removed []string) {
	for id := range new.ids {
		if !old.ids[id] {
			added = append(added, displayID(id))
		}
	}
	for id := range old.ids {
		if !new.ids[id] {
			removed = append(removed, displayID(id))
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// logSwap says what a refresh changed: the first load with every kid, a
// rotation with the kids added and removed, a withdrawal (tokens signed by
// those keys are refused from now on, cached ones included) as a warning,
// and an unchanged refresh only at debug level.
func (s *Source) logSwap(old, new *keySet, trigger, result string) {
	log := s.env.log
	if old == nil {
		log.Info("keys loaded", "source", s.name, "trigger", trigger, "result", result,
			"keys", new.n, "kids", kidsOf(new))
		return
	}
	added, removed := diffKeys(old, new)
	if len(added) == 0 && len(removed) == 0 {
		log.Debug("keys refreshed, unchanged", "source", s.name, "trigger", trigger, "keys", new.n)
		return
	}
	log.Info("keys rotated", "source", s.name, "trigger", trigger, "keys", new.n,
		"added", added, "removed", removed)
	if len(removed) > 0 {
		log.Warn("keys withdrawn: tokens they signed are refused from now on, cached ones included",
			"source", s.name, "kids", removed)
	}
}

// health tracks a refresh loop's consecutive failures, so that the log says
// when a source starts failing and when it recovers, and for how long it was
// down, besides each failed attempt.
type health struct {
	failures int
	since    time.Time
}

// failed notes one failed refresh at now.
func (h *health) failed(now time.Time) {
	if h.failures == 0 {
		h.since = now
	}
	h.failures++
}

// recovered notes a successful refresh at now; it logs the recovery when
// the source had been failing.
func (h *health) recovered(log *slog.Logger, source string, now time.Time) {
	if h.failures == 0 {
		return
	}
	log.Info("key source recovered", "source", source, "failed_refreshes", h.failures,
		"failing_for", now.Sub(h.since).Round(time.Millisecond).String())
	*h = health{}
}
