package revocation

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// benchStore is a store whose URL layer holds tokens token entries and
// subjects subject entries, installed the way a fetch installs them.
func benchStore(b *testing.B, tokens, subjects int) *Store {
	b.Helper()
	doc := Document{Version: Version}
	for i := range tokens {
		doc.Tokens = append(doc.Tokens, TokenEntry{Issuer: "https://id.example", JTI: fmt.Sprintf("jti-%08d", i), Expiry: NumericDate{t0.Add(time.Hour)}})
	}
	for i := range subjects {
		doc.Subjects = append(doc.Subjects, SubjectEntry{Issuer: "https://id.example", Subject: fmt.Sprintf("user-%08d", i),
			IssuedBefore: NumericDate{t0}, Expiry: NumericDate{t0.Add(time.Hour)}})
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	l, err := Parse(raw, t0, 0)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{URL: "http://127.0.0.1:1/list", Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	s.install(1, l)
	return s
}

// BenchmarkRevoked is the allowed path's added cost: a token that is not
// on the list, looked up by jti and by subject.
func BenchmarkRevoked(b *testing.B) {
	for _, size := range []struct {
		name             string
		tokens, subjects int
	}{
		{"empty", 0, 0},
		{"100k", 90_000, 10_000},
	} {
		s := benchStore(b, size.tokens, size.subjects)
		iat := t0.Add(time.Minute)
		b.Run(size.name+"/allowed", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s.Revoked("https://id.example", "some-fresh-jti-value", "user-00000042", iat) {
					b.Fatal("revoked")
				}
			}
		})
		if size.tokens == 0 {
			continue
		}
		b.Run(size.name+"/revoked", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !s.Revoked("https://id.example", "jti-00004242", "", iat) {
					b.Fatal("not revoked")
				}
			}
		})
	}
}

// BenchmarkParse is the cost of installing a 100,000-entry list, paid once
// per changed fetch, off the request path.
func BenchmarkParse(b *testing.B) {
	doc := Document{Version: Version}
	for i := range 100_000 {
		doc.Tokens = append(doc.Tokens, TokenEntry{Issuer: "https://id.example", JTI: fmt.Sprintf("jti-%08d", i), Expiry: NumericDate{t0.Add(time.Hour)}})
	}
	raw, _ := json.Marshal(doc)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw, t0, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRevokedAllocatesNothing pins the hot path at zero allocations.
func TestRevokedAllocatesNothing(t *testing.T) {
	s := benchStore(&testing.B{}, 100, 100)
	iat := t0.Add(time.Minute)
	if n := testing.AllocsPerRun(100, func() { s.Revoked("https://id.example", "jti-00000001", "user-00000001", iat) }); n != 0 {
		t.Errorf("Revoked allocates %v times", n)
	}
}
