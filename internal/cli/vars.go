package cli

import (
	"encoding"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// VarError is a problem of one environment variable, in operator words:
// "REQUIRE_EXP: want true or false, not \"yes\"".
type VarError struct {
	Var string
	Err error
}

func (e *VarError) Error() string { return e.Var + ": " + e.Err.Error() }
func (e *VarError) Unwrap() error { return e.Err }

// FailedVars names the variables that err (from Parse) says could not be
// parsed, so that a caller validating the rest can leave them out: their
// fields hold zero values, not what the operator meant.
func FailedVars(err error) map[string]bool {
	out := map[string]bool{}
	var walk func(error)
	walk = func(e error) {
		var ve *VarError
		if errors.As(e, &ve) {
			out[ve.Var] = true
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	urlType      = reflect.TypeFor[url.URL]()
	textType     = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// want says what a field of type t accepts, for a value that did not
// parse; "" for a type whose own parser words its errors (the project's
// TextUnmarshalers).
func want(t reflect.Type, value string) string {
	if reflect.PointerTo(t).Implements(textType) && t != urlType {
		return ""
	}
	switch {
	case t == durationType:
		return fmt.Sprintf("want a duration such as 30s, 5m or 1h30m, not %q", value)
	case t.Kind() == reflect.Pointer && t.Elem() == urlType, t == urlType:
		return fmt.Sprintf("want a URL such as http://127.0.0.1:3000, not %q", value)
	}
	switch t.Kind() {
	case reflect.Bool:
		return fmt.Sprintf("want true or false, not %q", value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("want a whole number, not %q", value)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("want a whole number of 0 or more, not %q", value)
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("want a number, not %q", value)
	case reflect.Slice:
		if w := want(t.Elem(), value); w != "" {
			return "a comma-separated list: each item: " + strings.Replace(w, fmt.Sprintf(", not %q", value), "", 1) + fmt.Sprintf(" (got %q)", value)
		}
	}
	return ""
}
