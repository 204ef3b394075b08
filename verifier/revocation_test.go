package verifier_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/revocation"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// revocationFile writes a revocation list of tokens (iss, jti) and
// subjects (iss, sub revoked before before), valid for an hour.
func revocationFile(t testing.TB, path string, tokens [][2]string, subjects [][2]string, before time.Time) {
	t.Helper()
	exp := time.Now().Add(time.Hour).Unix()
	doc := map[string]any{"version": 1, "tokens": []any{}, "subjects": []any{}}
	var ts, ss []any
	for _, e := range tokens {
		ts = append(ts, map[string]any{"iss": e[0], "jti": e[1], "exp": exp})
	}
	for _, e := range subjects {
		ss = append(ss, map[string]any{"iss": e[0], "sub": e[1], "issued_before": before.Unix(), "exp": exp})
	}
	if ts != nil {
		doc["tokens"] = ts
	}
	if ss != nil {
		doc["subjects"] = ss
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// revocationVerifier is a real verifier with a token cache and a real
// revocation store reading path, and a token of issA with jti "j-1",
// subject alice, issued a minute ago.
func revocationVerifier(t testing.TB, path string) (*verifier.Verifier, *revocation.Store, string) {
	t.Helper()
	store, err := revocation.New(revocation.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, "ES256", "k1")
	src, err := keys.NewStaticSource("s", []string{issA}, []keys.StaticKey{{KID: "k1", Key: s.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	ks := mustKeys(t, keys.KeyOptions{}, nil, src)
	load(t, ks)
	v, err := verifier.New(verifier.Options{
		Keys: ks, Audiences: []string{aud}, ClockSkew: 30 * time.Second, RequireExp: true,
		CacheSize: 100, Revocations: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := claims(issA)
	c["jti"] = "j-1"
	c["iat"] = time.Now().Add(-time.Minute).Unix()
	c["nbf"] = time.Now().Add(-time.Minute).Unix()
	c["exp"] = time.Now().Add(time.Hour).Unix()
	return v, store, s.Sign(t, c)
}

func bearerRequest(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// TestRevokedOnCacheHits: a token verified and cached is refused as
// revoked once the list names it, by jti or by subject, at the next
// refresh: the cached verdict does not outlive the revocation.
func TestRevokedOnCacheHits(t *testing.T) {
	tests := []struct {
		name     string
		tokens   [][2]string
		subjects [][2]string
		before   time.Duration // issued_before relative to now
		revoked  bool
	}{
		{name: "by jti", tokens: [][2]string{{issA, "j-1"}}, revoked: true},
		{name: "another jti", tokens: [][2]string{{issA, "j-2"}}},
		{name: "the jti at another issuer", tokens: [][2]string{{issB, "j-1"}}},
		{name: "by subject, issued before", subjects: [][2]string{{issA, "alice"}}, revoked: true},
		{name: "by subject, issued after", subjects: [][2]string{{issA, "alice"}}, before: -time.Hour},
		{name: "another subject", subjects: [][2]string{{issA, "bob"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "revocations.json")
			revocationFile(t, path, nil, nil, time.Now())
			v, store, tok := revocationVerifier(t, path)
			for range 2 { // a miss, then a hit
				if _, err := v.Verify(t.Context(), bearerRequest(tok)); err != nil {
					t.Fatalf("before the revocation: %v", err)
				}
			}
			if v.CacheLen() != 1 {
				t.Fatalf("cache holds %d tokens", v.CacheLen())
			}
			revocationFile(t, path, tt.tokens, tt.subjects, time.Now().Add(tt.before))
			// The file poll checks size and mtime; make sure it differs.
			later := time.Now().Add(time.Minute)
			_ = os.Chtimes(path, later, later)
			if err := store.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			_, err := v.Verify(t.Context(), bearerRequest(tok))
			if !tt.revoked {
				if err != nil {
					t.Fatalf("not revoked, but: %v", err)
				}
				return
			}
			var e *verifier.Error
			if !errors.As(err, &e) || e.Reason != verifier.Revoked || e.TokenHash == "" || e.Issuer != issA {
				t.Fatalf("err = %#v, want a revoked refusal naming issuer and token hash", err)
			}
		})
	}
}

// TestRevocationAllocatesNothing: the allowed path (a cache hit) costs the
// same allocations with a 100,000-entry list as without any list.
func TestRevocationAllocatesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	bigList(t, path, 100_000)
	v, _, tok := revocationVerifier(t, path)
	plainV, plainTok := plainVerifier(t)
	allocs := func(v *verifier.Verifier, tok string) float64 {
		r := bearerRequest(tok)
		ctx := t.Context()
		if _, err := v.Verify(ctx, r); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(200, func() {
			if _, err := v.Verify(ctx, r); err != nil {
				t.Fatal(err)
			}
		})
	}
	with, plain := allocs(v, tok), allocs(plainV, plainTok)
	if with > plain {
		t.Errorf("a cache hit with a 100,000-entry list allocates %v, without a list %v", with, plain)
	}
}

// bigList writes n entries: 90% tokens, 10% subjects, none naming the
// test token.
func bigList(t testing.TB, path string, n int) {
	t.Helper()
	var tokens, subjects [][2]string
	for i := range n {
		if i%10 == 9 {
			subjects = append(subjects, [2]string{issA, fmt.Sprintf("user-%d", i)})
		} else {
			tokens = append(tokens, [2]string{issA, fmt.Sprintf("jti-%d", i)})
		}
	}
	revocationFile(t, path, tokens, subjects, time.Now())
}

// BenchmarkVerifyRevocation is the allowed path through the verifier (a
// token-cache hit, from the request) with no list, an empty list and a
// 100,000-entry list: the list costs a lookup, not a scan, and no
// allocation.
//
//	go test -run '^$' -bench VerifyRevocation -benchmem ./verifier/
func BenchmarkVerifyRevocation(b *testing.B) {
	for _, n := range []int{-1, 0, 100_000} {
		name := fmt.Sprintf("entries=%d", n)
		if n < 0 {
			name = "no-list"
		}
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "revocations.json")
			if n >= 0 {
				bigList(b, path, n)
			}
			var (
				v   *verifier.Verifier
				tok string
			)
			if n < 0 {
				v, tok = plainVerifier(b)
			} else {
				v, _, tok = revocationVerifier(b, path)
			}
			r := bearerRequest(tok)
			ctx := b.Context()
			if _, err := v.Verify(ctx, r); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// plainVerifier is revocationVerifier without a store.
func plainVerifier(t testing.TB) (*verifier.Verifier, string) {
	t.Helper()
	s := newSigner(t, "ES256", "k1")
	src, err := keys.NewStaticSource("s", []string{issA}, []keys.StaticKey{{KID: "k1", Key: s.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	ks := mustKeys(t, keys.KeyOptions{}, nil, src)
	load(t, ks)
	v, err := verifier.New(verifier.Options{Keys: ks, Audiences: []string{aud}, ClockSkew: 30 * time.Second, RequireExp: true, CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	c := claims(issA)
	c["jti"] = "j-1"
	c["iat"] = time.Now().Add(-time.Minute).Unix()
	c["nbf"] = time.Now().Add(-time.Minute).Unix()
	c["exp"] = time.Now().Add(time.Hour).Unix()
	return v, s.Sign(t, c)
}
