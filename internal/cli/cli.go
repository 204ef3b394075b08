// Package cli is what the project's long-running commands share: the
// environment as the one source of configuration (caarlos0/env tags walked
// for --help, parse errors named by variable), --help and --version, the
// build version, and slog set up from LOG_LEVEL and LOG_FORMAT.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Exit codes of every command.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitConfig = 2 // bad arguments or configuration
)

// Environ returns the process environment as a map, the form Parse reads.
func Environ() map[string]string {
	out := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// Version is the build's version: linked (set with -ldflags -X), else the
// module version go install recorded, else "dev".
func Version(linked string) string {
	if linked != "" {
		return linked
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Args handles the only arguments a command takes: --help, --version and
// healthcheck URL. done is true when the command should exit with code at
// once.
func Args(args []string, name, version string, help func(io.Writer), stdout, stderr io.Writer) (code int, done bool) {
	if code, done := Healthcheck(args, name, stdout, stderr); done {
		return code, true
	}
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			help(stdout)
			return ExitOK, true
		case "-version", "--version", "version":
			fmt.Fprintln(stdout, name, version)
			return ExitOK, true
		default:
			fmt.Fprintf(stderr, "%s: unknown argument %q; see --help\n", name, a)
			return ExitConfig, true
		}
	}
	return ExitOK, false
}

// ConfigError prints err, one problem a line, and returns ExitConfig.
func ConfigError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "%s: configuration error:\n  %s\n", name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	return ExitConfig
}

// Parse fills a T from environ by its env tags. Its errors name the
// variable, never the Go field, and list every problem at once.
//
// On an error it still returns the configuration, every variable that
// parsed filled in, so that a caller can validate the rest and report every
// problem at once (FailedVars names the ones to leave out).
func Parse[T any](environ map[string]string) (*T, error) {
	var c T
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return &c, envErrors[T](err, environ)
	}
	return &c, nil
}

func envErrors[T any](err error, environ map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var out []error
	for _, e := range agg.Errors {
		var (
			pe  env.ParseError
			vns env.VarIsNotSetError
			ev  env.EmptyVarError
		)
		switch {
		case errors.As(e, &pe):
			name := varName[T](pe.Name)
			if f, ok := reflect.TypeFor[T]().FieldByName(pe.Name); ok {
				if w := want(f.Type, environ[name]); w != "" {
					out = append(out, &VarError{Var: name, Err: errors.New(w)})
					continue
				}
			}
			out = append(out, &VarError{Var: name, Err: pe.Err})
		case errors.As(e, &vns):
			out = append(out, fmt.Errorf("%s: required but not set", vns.Key))
		case errors.As(e, &ev):
			out = append(out, fmt.Errorf("%s: must not be empty", ev.Key))
		default:
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// varName maps a field of T to its environment variable.
func varName[T any](field string) string {
	if f, ok := reflect.TypeFor[T]().FieldByName(field); ok {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		return name
	}
	return field
}

// Fields lists the variables' fields of T in declaration order, the
// fields of embedded structs in place of the struct: a configuration may
// group its variables by feature without changing --help or their names.
func Fields[T any]() []reflect.StructField {
	var out []reflect.StructField
	for _, f := range reflect.VisibleFields(reflect.TypeFor[T]()) {
		if f.Anonymous && f.Type.Kind() == reflect.Struct || !f.IsExported() {
			continue
		}
		out = append(out, f)
	}
	return out
}

// PrintVars writes every variable of T with its default and its help tag,
// so that --help and the configuration struct cannot disagree.
func PrintVars[T any](w io.Writer) {
	for _, f := range Fields[T]() {
		name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		def := f.Tag.Get("envDefault")
		switch {
		case strings.Contains(opts, "required"):
			def = "(required)"
		case def == "":
			def = "(unset)"
		}
		fmt.Fprintf(w, "  %s  default: %s\n      %s\n", name, def, f.Tag.Get("help"))
	}
}

// ParseLevel reads LOG_LEVEL: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// CheckLog validates LOG_LEVEL and LOG_FORMAT, naming them.
func CheckLog(level, format string) []error {
	var errs []error
	if _, err := ParseLevel(level); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	if format != "json" && format != "text" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT: want json or text, not %q", format))
	}
	return errs
}

// Logger builds the slog logger of a validated LOG_LEVEL and LOG_FORMAT.
func Logger(level, format string, w io.Writer) *slog.Logger {
	l, _ := ParseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
