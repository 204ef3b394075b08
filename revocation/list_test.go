package revocation

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus d, as JSON seconds.
func at(d time.Duration) string {
	b, _ := NewNumericDate(t0.Add(d)).MarshalJSON()
	return string(b)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name         string
		doc          string
		wantErr      string
		wantTokens   int
		wantSubjects int
	}{
		{name: "empty lists", doc: `{"version":1,"tokens":[],"subjects":[]}`},
		{name: "absent lists", doc: `{"version":1}`},
		{name: "one of each", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":` + at(time.Hour) + `}],"subjects":[{"iss":"i","sub":"alice","issued_before":` + at(0) + `,"exp":` + at(time.Hour) + `}]}`, wantTokens: 1, wantSubjects: 1},
		{name: "fractional times", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":` + at(time.Hour) + `.25}]}`, wantTokens: 1},
		{name: "expired entries dropped", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":` + at(-time.Second) + `},{"iss":"i","jti":"b","exp":` + at(time.Second) + `}],"subjects":[{"iss":"i","sub":"s","issued_before":` + at(-time.Hour) + `,"exp":` + at(-time.Minute) + `}]}`, wantTokens: 1},
		{name: "duplicates merge", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":` + at(time.Hour) + `},{"iss":"i","jti":"a","exp":` + at(2*time.Hour) + `}]}`, wantTokens: 1},
		{name: "same jti other issuer", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":` + at(time.Hour) + `},{"iss":"j","jti":"a","exp":` + at(time.Hour) + `}]}`, wantTokens: 2},

		{name: "not json", doc: `nope`, wantErr: "not a valid document"},
		{name: "array", doc: `[]`, wantErr: "not a valid document"},
		{name: "no version", doc: `{"tokens":[]}`, wantErr: "version must be 1"},
		{name: "version 2", doc: `{"version":2}`, wantErr: "version must be 1"},
		{name: "unknown member", doc: `{"version":1,"sessions":[]}`, wantErr: "unknown field"},
		{name: "unknown entry member", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":` + at(time.Hour) + `,"sub":"x"}]}`, wantErr: "unknown field"},
		{name: "trailing object", doc: `{"version":1}{"version":1}`, wantErr: "data after"},
		{name: "trailing garbage", doc: `{"version":1} x`, wantErr: "data after"},
		{name: "invalid utf-8", doc: "{\"version\":1,\"tokens\":[{\"iss\":\"\xff\",\"jti\":\"a\",\"exp\":" + at(time.Hour) + "}]}", wantErr: "UTF-8"},
		{name: "empty iss", doc: `{"version":1,"tokens":[{"iss":"","jti":"a","exp":` + at(time.Hour) + `}]}`, wantErr: "tokens[0]: iss is empty"},
		{name: "empty jti", doc: `{"version":1,"tokens":[{"iss":"i","exp":` + at(time.Hour) + `}]}`, wantErr: "tokens[0]: jti is empty"},
		{name: "no exp", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a"}]}`, wantErr: "tokens[0]: exp is missing"},
		{name: "null entry", doc: `{"version":1,"tokens":[null]}`, wantErr: "tokens[0]: iss is empty"},
		{name: "string exp", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":"1767225600"}]}`, wantErr: "number of seconds"},
		{name: "null exp", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":null}]}`, wantErr: "number of seconds"},
		{name: "negative exp", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":-5}]}`, wantErr: "out of range"},
		{name: "milliseconds", doc: `{"version":1,"tokens":[{"iss":"i","jti":"a","exp":1767225600000}]}`, wantErr: "out of range"},
		{name: "subject without sub", doc: `{"version":1,"subjects":[{"iss":"i","issued_before":` + at(0) + `,"exp":` + at(time.Hour) + `}]}`, wantErr: "subjects[0]: sub is empty"},
		{name: "subject without time", doc: `{"version":1,"subjects":[{"iss":"i","sub":"s","exp":` + at(time.Hour) + `}]}`, wantErr: "subjects[0]: issued_before is missing"},
		{name: "subject exp before time", doc: `{"version":1,"subjects":[{"iss":"i","sub":"s","issued_before":` + at(time.Hour) + `,"exp":` + at(time.Minute) + `}]}`, wantErr: "exp is before issued_before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse([]byte(tt.doc), t0, 0)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if gt, gs := l.Len(); gt != tt.wantTokens || gs != tt.wantSubjects {
				t.Errorf("entries = %d tokens, %d subjects; want %d, %d", gt, gs, tt.wantTokens, tt.wantSubjects)
			}
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	doc := []byte(`{"version":1,"tokens":[]}`)
	if _, err := Parse(doc, t0, int64(len(doc))); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	if _, err := Parse(doc, t0, int64(len(doc)-1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("over the limit: err = %v", err)
	}
}

func TestListRevoked(t *testing.T) {
	doc := `{"version":1,
	"tokens":[{"iss":"https://a","jti":"j1","exp":` + at(time.Hour) + `}],
	"subjects":[{"iss":"https://a","sub":"alice","issued_before":` + at(0) + `,"exp":` + at(time.Hour) + `}]}`
	l, err := Parse([]byte(doc), t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		iss, jti, sub string
		iat           time.Time
		want          bool
	}{
		{name: "listed jti", iss: "https://a", jti: "j1", sub: "bob", iat: t0, want: true},
		{name: "jti of another issuer", iss: "https://b", jti: "j1", sub: "bob", iat: t0},
		{name: "other jti", iss: "https://a", jti: "j2", sub: "bob", iat: t0},
		{name: "subject issued before", iss: "https://a", jti: "x", sub: "alice", iat: t0.Add(-time.Second), want: true},
		{name: "subject issued at the time", iss: "https://a", jti: "x", sub: "alice", iat: t0},
		{name: "subject issued after", iss: "https://a", jti: "x", sub: "alice", iat: t0.Add(time.Second)},
		{name: "subject without iat", iss: "https://a", sub: "alice", want: true},
		{name: "subject of another issuer", iss: "https://b", sub: "alice", iat: t0.Add(-time.Hour)},
		{name: "no jti no sub", iss: "https://a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := l.revoked(tt.iss, tt.jti, tt.sub, tt.iat); got != tt.want {
				t.Errorf("revoked = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDocumentRoundTrip: what Document writes, Parse reads back to the same
// bytes, so the issuer's ETag is stable and the format is one.
func TestDocumentRoundTrip(t *testing.T) {
	doc := `{"version":1,"tokens":[{"iss":"i","jti":"b","exp":` + at(time.Hour) + `},{"iss":"i","jti":"a","exp":` + at(time.Hour) + `.5}],
	"subjects":[{"iss":"i","sub":"s","issued_before":` + at(0) + `,"exp":` + at(time.Hour) + `}]}`
	l, err := Parse([]byte(doc), t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	first, err := json.Marshal(l.Document())
	if err != nil {
		t.Fatal(err)
	}
	l2, err := Parse(first, t0, 0)
	if err != nil {
		t.Fatalf("Parse(Document()) = %v\n%s", err, first)
	}
	second, _ := json.Marshal(l2.Document())
	if string(first) != string(second) {
		t.Errorf("not stable:\n%s\n%s", first, second)
	}
	if !strings.Contains(string(first), `"jti":"a","exp":`+at(time.Hour)+`.5}`) || strings.Index(string(first), `"jti":"a"`) > strings.Index(string(first), `"jti":"b"`) {
		t.Errorf("entries not sorted or fraction lost: %s", first)
	}
}
