package verifier

import (
	"slices"
	"testing"
	"time"
)

// FuzzIntrospectionAnswer feeds arbitrary bodies to the reader of a token
// service's 200 answer (RFC 7662 §2.2). Whatever the body, the answer is
// either claims or a classified refusal, never both, never a panic; and
// only an object whose active is the JSON boolean true can pass.
func FuzzIntrospectionAnswer(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	in, err := NewIntrospector(IntrospectionOptions{
		URL: "http://127.0.0.1:1/introspect", ClientID: "sidecar", ClientSecret: "secret",
		Audiences: []string{"api"}, RequiredScopes: []string{"read"}, RequireExp: true,
		ClockSkew: 30 * time.Second, Now: func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"active":true,"sub":"alice","aud":"api","scope":"read write","exp":1800000600,"iat":1799999990}`))
	f.Add([]byte(`{"active":false}`))
	f.Add([]byte(`{"active":"true","exp":1e400}`))
	f.Add([]byte(`{"active":true,"exp":1800000600.5,"aud":["x","api"],"scp":["read"]} {}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, e := in.decide(body, now)
		if (c == nil) == (e == nil) {
			t.Fatalf("decide(%q) = %v, %v: want exactly one of claims and refusal", body, c, e)
		}
		if e != nil {
			if !slices.Contains(Reasons, e.Reason) {
				t.Fatalf("decide(%q): reason %q is not a known Reason", body, e.Reason)
			}
			return
		}
		values, err := decodeObject(body)
		if err != nil || values["active"] != true {
			t.Fatalf("decide(%q) allowed an answer that is not active:true", body)
		}
		if c.Expiry.IsZero() || !now.Before(c.Expiry.Add(30*time.Second)) {
			t.Fatalf("decide(%q) allowed exp %v at %v", body, c.Expiry, now)
		}
	})
}
