package revocation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the only list format version this package reads and writes.
const Version = 1

// DefaultMaxBytes bounds a list document: 100,000 entries of a typical
// issuer URL and a 32-byte jti take about 12 MB.
const DefaultMaxBytes = 32 << 20

// maxNumericDate is the year 5138: a time beyond it is a mistake (or a
// millisecond timestamp), not a NumericDate in seconds.
const maxNumericDate = 1e11

// Document is the list format as it travels, in a file or over HTTP. The
// dev issuer writes it with this type; Parse reads it strictly.
//
//	{
//	  "version": 1,
//	  "tokens":   [{"iss": "https://id.example", "jti": "4f1c...", "exp": 1767225600}],
//	  "subjects": [{"iss": "https://id.example", "sub": "alice",
//	                "issued_before": 1767225000, "exp": 1767225600}]
//	}
//
// Times are NumericDates (RFC 7519 §2: seconds since the epoch, fractions
// allowed). A token entry revokes the one token with that iss and jti; it
// is needed until the token's exp, after which the verifier refuses the
// token as expired anyway, so exp is when the entry may be dropped. A
// subject entry revokes every token with that iss and sub whose iat is
// before issued_before (strictly), and tokens without iat; its exp is
// issued_before plus the longest lifetime of a token of that issuer, the
// moment after which no token it covers can still be valid.
type Document struct {
	Version  int            `json:"version"`
	Tokens   []TokenEntry   `json:"tokens"`
	Subjects []SubjectEntry `json:"subjects"`
}

// TokenEntry revokes one token by issuer and jti until exp.
type TokenEntry struct {
	Issuer string      `json:"iss"`
	JTI    string      `json:"jti"`
	Expiry NumericDate `json:"exp"`
}

// SubjectEntry revokes every token of a subject issued before a time.
type SubjectEntry struct {
	Issuer       string      `json:"iss"`
	Subject      string      `json:"sub"`
	IssuedBefore NumericDate `json:"issued_before"`
	Expiry       NumericDate `json:"exp"`
}

// NumericDate is an RFC 7519 NumericDate: seconds since the epoch, with an
// optional fraction. It encodes as whole seconds when it has no fraction.
type NumericDate struct{ time.Time }

// NewNumericDate truncates t to microseconds, the precision a JSON number
// of this size keeps.
func NewNumericDate(t time.Time) NumericDate { return NumericDate{t.Truncate(time.Microsecond)} }

// MarshalJSON writes the seconds, with a fraction only when there is one.
func (d NumericDate) MarshalJSON() ([]byte, error) {
	if d.Nanosecond() == 0 {
		return fmt.Appendf(nil, "%d", d.Unix()), nil
	}
	s := fmt.Sprintf("%d.%06d", d.Unix(), d.Nanosecond()/1000)
	return []byte(strings.TrimRight(s, "0")), nil
}

// UnmarshalJSON reads a JSON number of seconds; anything else (a string, a
// negative, zero or absurdly large number) is an error.
func (d *NumericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("a NumericDate must be a number of seconds")
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("a NumericDate must be a number of seconds")
	}
	if math.IsNaN(f) || f <= 0 || f > maxNumericDate {
		return fmt.Errorf("NumericDate %s is out of range (seconds since 1970, after 0)", b)
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).UTC()
	return nil
}

// tokenKey and subjectKey are map keys made of the strings the caller
// already holds, so a lookup builds nothing on the heap.
type tokenKey struct{ iss, jti string }
type subjectKey struct{ iss, sub string }

// subjectRule is one subject entry in memory.
type subjectRule struct{ before, exp time.Time }

// List is one parsed, immutable revocation list. Lookups are map accesses;
// a List is never changed after it is built, so readers need no lock.
type List struct {
	tokens   map[tokenKey]time.Time // to the token's exp
	subjects map[subjectKey]subjectRule
}

// Len is the number of token and subject entries.
func (l *List) Len() (tokens, subjects int) {
	if l == nil {
		return 0, 0
	}
	return len(l.tokens), len(l.subjects)
}

// revoked reports whether the token (iss, jti, sub, iat) is on the list. A
// subject entry covers tokens issued strictly before its time, and tokens
// without iat (zero), which cannot show they came after it.
func (l *List) revoked(iss, jti, sub string, iat time.Time) bool {
	if jti != "" && len(l.tokens) > 0 {
		if _, ok := l.tokens[tokenKey{iss, jti}]; ok {
			return true
		}
	}
	if sub != "" && len(l.subjects) > 0 {
		if r, ok := l.subjects[subjectKey{iss, sub}]; ok && (iat.IsZero() || iat.Before(r.before)) {
			return true
		}
	}
	return false
}

// Parse reads a list document strictly: at most maxBytes (DefaultMaxBytes
// when zero), valid UTF-8, exactly one JSON object with no unknown member
// and nothing after it, version 1, every entry complete. Entries whose exp
// is before now are dropped: they cover only expired tokens. Two entries
// for the same token or subject merge into the one that covers more. An
// error names the first bad entry, e.g. "tokens[3]: jti is empty".
func Parse(raw []byte, now time.Time, maxBytes int64) (*List, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if int64(len(raw)) > maxBytes {
		return nil, fmt.Errorf("the list has %d bytes, more than the limit of %d", len(raw), maxBytes)
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("the list is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var doc struct {
		Version  *int           `json:"version"`
		Tokens   []TokenEntry   `json:"tokens"`
		Subjects []SubjectEntry `json:"subjects"`
	}
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("the list is not a valid document: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the list has data after its JSON object")
	}
	if doc.Version == nil || *doc.Version != Version {
		return nil, fmt.Errorf("the list's version must be %d", Version)
	}
	return build(doc.Tokens, doc.Subjects, now)
}

// build checks and indexes entries, dropping those expired at now.
func build(tokens []TokenEntry, subjects []SubjectEntry, now time.Time) (*List, error) {
	l := &List{
		tokens:   make(map[tokenKey]time.Time, len(tokens)),
		subjects: make(map[subjectKey]subjectRule, len(subjects)),
	}
	for i, e := range tokens {
		switch {
		case e.Issuer == "":
			return nil, fmt.Errorf("tokens[%d]: iss is empty", i)
		case e.JTI == "":
			return nil, fmt.Errorf("tokens[%d]: jti is empty", i)
		case e.Expiry.IsZero():
			return nil, fmt.Errorf("tokens[%d]: exp is missing", i)
		case e.Expiry.Before(now):
			continue
		}
		k := tokenKey{e.Issuer, e.JTI}
		if old, ok := l.tokens[k]; !ok || e.Expiry.After(old) {
			l.tokens[k] = e.Expiry.Time
		}
	}
	for i, e := range subjects {
		switch {
		case e.Issuer == "":
			return nil, fmt.Errorf("subjects[%d]: iss is empty", i)
		case e.Subject == "":
			return nil, fmt.Errorf("subjects[%d]: sub is empty", i)
		case e.IssuedBefore.IsZero():
			return nil, fmt.Errorf("subjects[%d]: issued_before is missing", i)
		case e.Expiry.IsZero():
			return nil, fmt.Errorf("subjects[%d]: exp is missing", i)
		case e.Expiry.Before(e.IssuedBefore.Time):
			return nil, fmt.Errorf("subjects[%d]: exp is before issued_before", i)
		case e.Expiry.Before(now):
			continue
		}
		k := subjectKey{e.Issuer, e.Subject}
		r := subjectRule{before: e.IssuedBefore.Time, exp: e.Expiry.Time}
		if old, ok := l.subjects[k]; ok {
			r.before = laterOf(r.before, old.before)
			r.exp = laterOf(r.exp, old.exp)
		}
		l.subjects[k] = r
	}
	return l, nil
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Document returns the list in the documented format, entries sorted so
// that the same list always encodes to the same bytes (and the same ETag).
func (l *List) Document() Document {
	doc := Document{Version: Version, Tokens: []TokenEntry{}, Subjects: []SubjectEntry{}}
	if l == nil {
		return doc
	}
	for k, exp := range l.tokens {
		doc.Tokens = append(doc.Tokens, TokenEntry{Issuer: k.iss, JTI: k.jti, Expiry: NumericDate{exp}})
	}
	for k, r := range l.subjects {
		doc.Subjects = append(doc.Subjects, SubjectEntry{Issuer: k.iss, Subject: k.sub, IssuedBefore: NumericDate{r.before}, Expiry: NumericDate{r.exp}})
	}
	slices.SortFunc(doc.Tokens, func(a, b TokenEntry) int {
		return cmpStrings(a.Issuer, b.Issuer, a.JTI, b.JTI)
	})
	slices.SortFunc(doc.Subjects, func(a, b SubjectEntry) int {
		return cmpStrings(a.Issuer, b.Issuer, a.Subject, b.Subject)
	})
	return doc
}

func cmpStrings(a1, b1, a2, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}

// withSubject returns a copy of l with a subject entry added (merged), and
// the entries expired at now dropped. It serves back-channel logouts, which
// are rare next to lookups, so copy-on-write keeps lookups lock-free.
func (l *List) withSubject(k subjectKey, r subjectRule, now time.Time) *List {
	n := &List{tokens: map[tokenKey]time.Time{}, subjects: make(map[subjectKey]subjectRule, len(l.subjects)+1)}
	for sk, sr := range l.subjects {
		if !sr.exp.Before(now) {
			n.subjects[sk] = sr
		}
	}
	if old, ok := n.subjects[k]; ok {
		r.before = laterOf(r.before, old.before)
		r.exp = laterOf(r.exp, old.exp)
	}
	n.subjects[k] = r
	return n
}
