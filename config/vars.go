package config

import (
	"reflect"
	"strings"
)

// Vars lists every environment variable the sidecar reads, in the order of
// Config's fields (the order of --help). It walks the struct's env tags, so
// a new field is a new variable everywhere at once: the injector accepts a
// per-pod value for exactly these names.
func Vars() []string {
	t := reflect.TypeFor[Config]()
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}
