package revocation

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestWhy: Why names the entry and its source exactly when Revoked says
// revoked: a token entry from the file, a subject entry from the URL, a
// back-channel logout entry, and nothing for a token issued after the
// subject's time or of another issuer.
func TestWhy(t *testing.T) {
	ls := &listServer{}
	ls.set(Document{Version: Version, Subjects: []SubjectEntry{{Issuer: "https://id", Subject: "alice",
		IssuedBefore: NumericDate{t0}, Expiry: NumericDate{t0.Add(time.Hour)}}}})
	srv := httptest.NewServer(ls)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "list.json")
	b, _ := json.Marshal(tokenDoc("j1"))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{URL: srv.URL, File: path, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.AddSubject("https://id", "bob", t0, t0.Add(time.Hour))
	tests := []struct {
		name          string
		iss, jti, sub string
		iat           time.Time
		want          []string // source and kind of each match
	}{
		{name: "by jti", iss: "https://id", jti: "j1", sub: "carol", iat: t0, want: []string{"file:" + path + " token"}},
		{name: "by subject", iss: "https://id", jti: "j2", sub: "alice", iat: t0.Add(-time.Second), want: []string{srv.URL + " subject"}},
		{name: "by both", iss: "https://id", jti: "j1", sub: "alice", iat: t0.Add(-time.Second), want: []string{"file:" + path + " token", srv.URL + " subject"}},
		{name: "by logout", iss: "https://id", jti: "j3", sub: "bob", want: []string{"backchannel subject"}},
		{name: "issued after", iss: "https://id", jti: "j2", sub: "alice", iat: t0},
		{name: "another issuer", iss: "https://other", jti: "j1", sub: "alice", iat: t0.Add(-time.Second)},
		{name: "no jti, no sub", iss: "https://id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := s.Why(tt.iss, tt.jti, tt.sub, tt.iat)
			var got []string
			for _, m := range ms {
				switch {
				case m.Token != nil && m.Subject == nil && m.Token.JTI == tt.jti && m.Token.Issuer == tt.iss:
					got = append(got, m.Source+" token")
				case m.Subject != nil && m.Token == nil && m.Subject.Subject == tt.sub && m.Subject.IssuedBefore.Equal(t0):
					got = append(got, m.Source+" subject")
				default:
					t.Errorf("odd match %+v", m)
				}
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !slices.Equal(got, tt.want)) {
				t.Errorf("Why = %q, want %q", got, tt.want)
			}
			if revoked := s.Revoked(tt.iss, tt.jti, tt.sub, tt.iat); revoked != (len(ms) > 0) {
				t.Errorf("Revoked = %v but Why found %d entries", revoked, len(ms))
			}
		})
	}
}
