package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
)

// stateIntrospection is the state of a provider without keys: the token
// service decides each token.
const stateIntrospection = "introspection"

// providerStates are every state a provider can be in, for the metric.
var providerStates = append(append([]string(nil), keys.States...), stateIntrospection)

// providerStatus is one provider's keys as /readyz, the metrics and the
// log report them.
type providerStatus struct {
	name string
	keys.Health
}

// String is the provider's line of /readyz's body, logfmt-like.
func (p providerStatus) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider=%s state=%s", p.name, p.State)
	if p.State == keys.StateFresh || p.State == keys.StateStale {
		fmt.Fprintf(&b, " keys=%d", p.Keys)
		if p.Age > 0 {
			fmt.Fprintf(&b, " age=%s", p.Age.Round(time.Second))
		}
	}
	return b.String()
}

// providers reports the state of each provider of the policy in force, in
// the policy's order.
func (rt *runtime) providers(now time.Time) []providerStatus {
	gen := rt.current.Load()
	if gen == nil {
		return nil
	}
	out := make([]providerStatus, 0, len(gen.order))
	for _, bp := range gen.order {
		st := providerStatus{name: bp.name, Health: keys.Health{State: stateIntrospection}}
		if bp.keys != nil {
			st.Health = bp.keys.Health(now)
		}
		out = append(out, st)
	}
	return out
}

// readyDetail is /readyz's body after its first line: one line per
// provider, so an operator sees which provider has no keys yet while the
// pod serves the others.
func (rt *runtime) readyDetail() string {
	var b strings.Builder
	for _, p := range rt.providers(time.Now()) {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// watchProviders keeps the provider metrics current and logs each change
// of a provider's state (a provider without keys getting them, keys going
// stale, recovering), every interval until ctx ends.
func (rt *runtime) watchProviders(ctx context.Context, interval time.Duration) error {
	last := map[string]string{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rt.noteProviders(last)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// noteProviders records the states now, logging those that differ from
// last (which it updates).
func (rt *runtime) noteProviders(last map[string]string) {
	now := time.Now()
	sts := rt.providers(now)
	names := make([]string, 0, len(sts))
	for _, p := range sts {
		names = append(names, p.name)
		age := -1.0
		if p.State == keys.StateFresh || p.State == keys.StateStale {
			age = p.Age.Seconds()
		}
		if rt.prov != nil {
			rt.prov.Set(p.name, p.State, age)
		}
		prev, seen := last[p.name]
		if seen && prev == p.State {
			continue
		}
		last[p.name] = p.State
		attrs := []any{"provider", p.name, "state", p.State, "previous", prev}
		switch p.State {
		case keys.StateNoKeys:
			rt.log.Warn("provider has no keys yet: its tokens get 401 unknown_key until they load", attrs...)
		case keys.StateStale:
			rt.log.Warn("provider serves stale keys: its key source cannot be refreshed", append(attrs, "age", p.Age.Round(time.Second).String())...)
		default:
			rt.log.Info("provider state", append(attrs, "keys", p.Keys)...)
		}
	}
	for name := range last {
		if !slices.Contains(names, name) {
			delete(last, name)
		}
	}
	if rt.prov != nil {
		rt.prov.Keep(names)
	}
}

// providerWatch is how often provider states are checked.
const providerWatch = time.Second
