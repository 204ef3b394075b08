package atomicfile

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEntryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "e.json")
	// Bytes that JSON would re-escape or compact if kept as a raw message.
	body := []byte("{ \"keys\" : [ ], \"note\": \"<&>\" }\n")
	h := http.Header{"Etag": {`W/"v1"`}, "Last-Modified": {"Mon, 01 Jan 2024 00:00:00 GMT"}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := NewEntry("https://idp.example/jwks", h, body, at)
	want.Expires = at.Add(time.Minute)
	if err := WriteEntry(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadEntry(path, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Body, body) || got.URL != want.URL || got.ETag != `W/"v1"` || got.LastModified != want.LastModified ||
		!got.FetchedAt.Equal(at) || !got.Expires.Equal(want.Expires) || !got.Conditional() {
		t.Errorf("read %+v, want %+v", got, want)
	}
	if _, err := ReadEntry(path, int64(len(body))-1); err == nil {
		t.Error("a body over the limit was accepted")
	}
}

// A bare document (what a version before entries wrote) is an entry
// without validators; something that is no JSON object is an error.
func TestReadEntryBare(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "bare.json")
	doc := []byte(`{"keys":[]}`)
	if err := os.WriteFile(bare, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := ReadEntry(bare, 1024)
	if err != nil || !bytes.Equal(e.Body, doc) || e.Conditional() || !e.FetchedAt.IsZero() {
		t.Errorf("bare: %+v, %v; want the document as body without validators", e, err)
	}
	junk := filepath.Join(dir, "junk.json")
	if err := os.WriteFile(junk, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEntry(junk, 1024); err == nil {
		t.Error("junk read as an entry")
	}
}

// FuzzReadEntry: whatever a cache file holds (a crash, a disk error, an
// older version), reading it is an entry within the limit or an error.
func FuzzReadEntry(f *testing.F) {
	f.Add([]byte(`{"url":"https://idp.example/jwks","etag":"\"v1\"","fetched_at":"2026-01-02T03:04:05Z","body":"eyJrZXlzIjpbXX0="}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"body":null}`))
	f.Add([]byte(`{"body":"!!"}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "e.json")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := ReadEntry(path, 64)
		if err == nil && len(e.Body) > 64 {
			t.Fatalf("a %d-byte body passed the 64-byte limit", len(e.Body))
		}
	})
}
