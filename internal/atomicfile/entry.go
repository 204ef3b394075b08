package atomicfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Entry is a document fetched over HTTP and kept on disk with what makes
// the next request for it conditional (RFC 9110 §13.1): a process that
// restarts sends If-None-Match and If-Modified-Since with the validators of
// the copy it holds, so a fleet restarted at once costs the server 304s,
// not a full answer per process.
type Entry struct {
	// URL is where Body came from; the validators are that URL's.
	URL          string    `json:"url,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	FetchedAt    time.Time `json:"fetched_at,omitzero"`
	// Expires, when set, is when the copy stops being fresh by the
	// server's own Cache-Control max-age (as the owner bounded it).
	Expires time.Time `json:"expires,omitzero"`
	// Body is the document exactly as served (base64 in the file), so the
	// bytes and any hash of them survive a restart unchanged.
	Body []byte `json:"body"`
}

// NewEntry records body as fetched from url with the validators of h.
func NewEntry(url string, h http.Header, body []byte, fetchedAt time.Time) Entry {
	return Entry{URL: url, ETag: h.Get("ETag"), LastModified: h.Get("Last-Modified"), FetchedAt: fetchedAt.UTC(), Body: body}
}

// Conditional reports whether the entry holds a validator to send.
func (e Entry) Conditional() bool { return e.ETag != "" || e.LastModified != "" }

// WriteEntry writes e to path atomically (see Write).
func WriteEntry(path string, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return Write(path, b)
}

// errNotEntry is a file that is no Entry: an older version's bare copy.
var errNotEntry = errors.New("not an entry")

// ReadEntry reads the entry at path; its body may have up to limit bytes.
// A file that is a bare JSON document (what versions before the validators
// were kept wrote) is read as an entry without validators, so an upgrade
// keeps the cache and costs one full answer.
func ReadEntry(path string, limit int64) (Entry, error) {
	// base64 takes 4 bytes per 3, plus the validators around it.
	raw, err := ReadLimited(path, limit/3*4+8<<10)
	if err != nil {
		return Entry{}, err
	}
	e, err := decodeEntry(raw)
	if errors.Is(err, errNotEntry) {
		e, err = Entry{Body: raw}, nil
	}
	if err != nil {
		return Entry{}, err
	}
	if int64(len(e.Body)) > limit {
		return Entry{}, errors.New(path + ": the cached body exceeds the size limit")
	}
	return e, nil
}

func decodeEntry(raw []byte) (Entry, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return Entry{}, err
	}
	body, ok := probe["body"]
	if !ok || bytes.Equal(body, []byte("null")) {
		return Entry{}, errNotEntry
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return Entry{}, err
	}
	return e, nil
}
