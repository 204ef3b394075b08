package policy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// matches reports whether a claim value, or one element of an array claim,
// equals one of the wanted values. Types must agree: the string "true" is
// not the bool true, and "42" is not the number 42.
func (cr *ClaimRequirement) matches(v any) bool {
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if cr.matchesOne(e) {
				return true
			}
		}
		return false
	}
	return cr.matchesOne(v)
}

func (cr *ClaimRequirement) matchesOne(v any) bool {
	for _, want := range cr.Values {
		switch w := want.(type) {
		case string:
			if s, ok := v.(string); ok && s == w {
				return true
			}
		case bool:
			if b, ok := v.(bool); ok && b == w {
				return true
			}
		case int64:
			if n, ok := v.(json.Number); ok && isInt(n) {
				if i, err := n.Int64(); err == nil && i == w {
					return true
				}
			}
		case float64:
			if n, ok := v.(json.Number); ok {
				if f, err := n.Float64(); err == nil && f == w {
					return true
				}
			}
		}
	}
	return false
}

// isInt reports whether a JSON number is written as an integer, so that
// parsing it cannot fail (and allocate an error) on the request path.
func isInt(n json.Number) bool {
	s := strings.TrimPrefix(string(n), "-")
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// want describes the wanted values for a refusal's detail.
func (cr *ClaimRequirement) want() string {
	parts := make([]string, len(cr.Values))
	for i, v := range cr.Values {
		parts[i] = shown(v)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "one of " + strings.Join(parts, ", ")
}

// shown renders a value for a log line: strings quoted, others as JSON.
func shown(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
