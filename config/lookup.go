package config

import (
	"fmt"
	"net/textproto"
	"strings"
)

// Lookup is one place a token may be read from: TOKEN_LOOKUP's
// `header:NAME`, `cookie:NAME` or `query:NAME`.
type Lookup struct {
	Kind LookupKind
	Name string
}

// LookupKind is where a token travels.
type LookupKind string

// The places a token can travel.
const (
	InHeader LookupKind = "header"
	InCookie LookupKind = "cookie"
	InQuery  LookupKind = "query"
)

func (l Lookup) String() string { return string(l.Kind) + ":" + l.Name }

// Lookups is TOKEN_LOOKUP, parsed: where a request's token may travel.
type Lookups []Lookup

// UnmarshalText parses TOKEN_LOOKUP (ParseLookups).
func (ls *Lookups) UnmarshalText(b []byte) error {
	out, err := ParseLookups(string(b))
	*ls = out
	return err
}

// ParseLookups parses TOKEN_LOOKUP: comma-separated header:NAME, cookie:NAME
// or query:NAME entries.
func ParseLookups(spec string) ([]Lookup, error) {
	var out []Lookup
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, name, ok := strings.Cut(item, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%q: want header:NAME, cookie:NAME or query:NAME", item)
		}
		l := Lookup{Kind: LookupKind(strings.TrimSpace(kind)), Name: name}
		switch l.Kind {
		case InHeader:
			l.Name = textproto.CanonicalMIMEHeaderKey(name)
		case InCookie, InQuery:
		default:
			return nil, fmt.Errorf("%q: unknown source %q; want header, cookie or query", item, kind)
		}
		for _, seen := range out {
			if seen == l {
				return nil, fmt.Errorf("%q is listed twice", item)
			}
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no token location given")
	}
	return out, nil
}
