package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"golang.org/x/sync/errgroup"
)

// reload reads CONFIG_FILE again and, when it is valid, puts it in force.
// A file that fails is logged and counted, and the running policy stays.
// A file whose content did not change is left alone unless a signal asked.
func (rt *runtime) reload(ctx context.Context, trigger string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	cur := rt.current.Load()
	spec, err := policy.ReadFile(rt.cfg.ConfigFile)
	if err == nil && trigger == triggerFileChange && spec.Sum == cur.spec.Sum {
		return nil
	}
	var gen *generation
	if err == nil {
		gen, err = rt.build(spec, cur)
	}
	if err != nil {
		rt.pm.ReloadFailed()
		rt.log.Error("CONFIG_FILE refused; the running policy stays", "file", rt.cfg.ConfigFile, "trigger", trigger,
			"error", strings.ReplaceAll(err.Error(), "\n", "; "))
		return err
	}
	// New providers load their keys before they take requests, so that a
	// reload does not answer unknown_key while they fetch. A source that
	// cannot load now keeps retrying in the background, as at start.
	for _, bp := range gen.order {
		if !bp.fresh || bp.keys == nil {
			continue
		}
		if err := bp.keys.LoadOnce(ctx); err != nil {
			rt.log.Warn("a new provider's keys could not be loaded yet; retrying in the background", "provider", bp.name, "error", err)
		}
	}
	rt.apply(gen, true)
	reused := 0
	for _, bp := range gen.order {
		if !bp.fresh {
			reused++
		}
	}
	rt.log.Info("CONFIG_FILE reloaded", "file", rt.cfg.ConfigFile, "trigger", trigger,
		"providers", len(gen.order), "providers_kept", reused, "rules", len(spec.Rules), "key_sources", len(gen.sources))
	return nil
}

// fileStamp tells whether CONFIG_FILE may have changed: the file the path
// leads to now (a Kubernetes ConfigMap swaps a symlink, ..data, to a new
// directory), its size and its modification time.
type fileStamp struct {
	info os.FileInfo
}

func statFile(path string) (fileStamp, error) {
	info, err := os.Stat(path) // follows symlinks: the file as it is now
	return fileStamp{info: info}, err
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == b.info
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}

// changed re-stats the path and reports whether it now leads to another
// file, or the same file with another size or time.
func (rt *runtime) changed() bool {
	st, err := statFile(rt.cfg.ConfigFile)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err != nil {
		if rt.stamp.info != nil {
			rt.log.Warn("CONFIG_FILE cannot be read; the running policy stays", "file", rt.cfg.ConfigFile, "error", err)
		}
		rt.stamp = fileStamp{}
		return false
	}
	if st.same(rt.stamp) {
		return false
	}
	rt.stamp = st
	return true
}

// run keeps the policy current until ctx ends: the key sources' refresh
// loops and, with CONFIG_FILE, a poll of the file and SIGHUP, which
// reloads at once. Without CONFIG_FILE a SIGHUP is logged and ignored: Go's
// default would end the process, and an operator used to "kill -HUP"
// reloading nginx would take the sidecar down.
func (rt *runtime) run(ctx context.Context, hup <-chan os.Signal) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rt.sources.Run(ctx) })
	g.Go(func() error { return rt.state.run(ctx) })
	g.Go(func() error { return rt.watchProviders(ctx, providerWatch) })
	g.Go(func() error {
		var tick <-chan time.Time
		if rt.cfg.ConfigFile != "" {
			t := time.NewTicker(rt.poll)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				if rt.cfg.ConfigFile == "" {
					rt.log.Warn("SIGHUP ignored: the environment is read once, at start; only CONFIG_FILE is reloaded")
					continue
				}
				_ = rt.reload(ctx, triggerSignal)
			case <-tick:
				if rt.changed() {
					_ = rt.reload(ctx, triggerFileChange)
				}
			}
		}
	})
	return g.Wait()
}

// Reload triggers, for the log line.
const (
	triggerSignal     = "sighup"
	triggerFileChange = "file_change"
)

// configPoll is how often CONFIG_FILE is checked for changes, as JWKS
// files are.
const configPoll = 2 * time.Second
