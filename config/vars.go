package config

import (
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// Vars lists every environment variable the sidecar reads, in the order of
// Config's fields (the order of --help). It walks the struct's env tags, so
// a new field is a new variable everywhere at once: the injector accepts a
// per-pod value for exactly these names.
func Vars() []string {
	var out []string
	for _, f := range cli.Fields[Config]() {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}
