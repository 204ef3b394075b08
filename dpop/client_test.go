package dpop

import (
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/dpoptest"
)

// clientKeys are one key of each type NewClient takes, with the alg of its
// proofs.
func clientKeys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{
		"ES256": mustEC(t, elliptic.P256()), "ES384": mustEC(t, elliptic.P384()), "ES512": mustEC(t, elliptic.P521()),
		"PS256": rsaKey, "EdDSA": edKey,
	}
}

// TestClientProofPassesChecker: a proof of each key type passes the
// resource server's whole check for a token bound to Client.JKT, once; the
// same proof again is a replay, and a proof for another request or token
// does not fit.
func TestClientProofPassesChecker(t *testing.T) {
	for alg, key := range clientKeys(t) {
		t.Run(alg, func(t *testing.T) {
			c, err := NewClient(key)
			if err != nil {
				t.Fatal(err)
			}
			c.Now = func() time.Time { return t0 }
			if c.Alg() != alg {
				t.Errorf("Alg = %s, want %s", c.Alg(), alg)
			}
			chk, err := New(Options{Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			const uri = "https://api.example/orders/42?expand=items#top"
			proof, err := c.Proof("GET", uri, "the-token", "")
			if err != nil {
				t.Fatal(err)
			}
			req := Request{Method: "GET", URI: uri, Proofs: []string{proof}, AccessToken: "the-token"}
			p, err := chk.CheckToken(req, "DPoP", c.JKT())
			if err != nil {
				t.Fatalf("CheckToken = %v", err)
			}
			if p.HTU != "https://api.example/orders/42" || p.HTM != "GET" || !p.IAT.Equal(t0) || p.ATH != TokenHash("the-token") || p.Nonce != "" {
				t.Errorf("proof claims = %+v; want htu without query and fragment, htm GET, iat t0, ath of the token", p)
			}
			if _, err := chk.CheckToken(req, "DPoP", c.JKT()); !isReason(err, Replayed) {
				t.Errorf("the same proof again = %v, want %s", err, Replayed)
			}
			other, err := c.Proof("GET", uri, "the-token", "")
			if err != nil {
				t.Fatal(err)
			}
			if other == proof {
				t.Error("two proofs are identical: each needs a fresh jti")
			}
			for name, r := range map[string]Request{
				"other method": {Method: "POST", URI: uri, Proofs: []string{other}, AccessToken: "the-token"},
				"other URI":    {Method: "GET", URI: "https://api.example/orders/43", Proofs: []string{other}, AccessToken: "the-token"},
				"other token":  {Method: "GET", URI: uri, Proofs: []string{other}, AccessToken: "another-token"},
			} {
				if _, err := chk.CheckToken(r, "DPoP", c.JKT()); !isReason(err, Mismatch) {
					t.Errorf("%s = %v, want %s", name, err, Mismatch)
				}
			}
		})
	}
}

// TestClientTokenEndpointProof: without an access token there is no ath,
// which a token endpoint accepts (§5) and a resource server refuses
// (§7.1); a nonce is carried as given.
func TestClientTokenEndpointProof(t *testing.T) {
	c, err := NewClient(mustEC(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return t0 }
	chk, err := New(Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := c.Proof("POST", "https://as.example/token", "", "n-1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := chk.CheckProof(Request{Method: "POST", URI: "https://as.example/token", Proofs: []string{proof}})
	if err != nil {
		t.Fatal(err)
	}
	if p.JKT != c.JKT() || p.ATH != "" || p.Nonce != "n-1" {
		t.Errorf("proof = %+v; want the client's JKT, no ath, nonce n-1", p)
	}
	noATH, err := c.Proof("GET", "https://api.example/r", "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = chk.CheckToken(Request{Method: "GET", URI: "https://api.example/r", Proofs: []string{noATH}, AccessToken: "tok"}, "DPoP", c.JKT())
	if !isReason(err, Invalid) {
		t.Errorf("a proof without ath at a resource server = %v, want %s", err, Invalid)
	}
}

// TestClientClock: Now makes stale and future proofs, which the checker
// refuses.
func TestClientClock(t *testing.T) {
	c, err := NewClient(mustEC(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}
	chk, err := New(Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{t0.Add(-2 * DefaultMaxAge), t0.Add(time.Minute)} {
		c.Now = func() time.Time { return at }
		proof, err := c.Proof("GET", "https://api.example/r", "tok", "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = chk.CheckToken(Request{Method: "GET", URI: "https://api.example/r", Proofs: []string{proof}, AccessToken: "tok"}, "DPoP", c.JKT())
		if !isReason(err, Invalid) {
			t.Errorf("iat %s = %v, want %s", at.Sub(t0), err, Invalid)
		}
	}
}

// TestClientRFC7638Vector: the RSA jwk and its thumbprint are RFC 7638
// §3.1's example.
func TestClientRFC7638Vector(t *testing.T) {
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	nb, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		t.Fatal(err)
	}
	// Only the public part is read; the key cannot sign.
	key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: 65537}}
	c, err := NewClient(key)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; c.JKT() != want {
		t.Errorf("JKT = %s, want RFC 7638's %s", c.JKT(), want)
	}
	if got, _ := json.Marshal(c.jwk); string(got) != `{"e":"AQAB","kty":"RSA","n":"`+n+`"}` {
		t.Errorf("jwk = %s", got)
	}
}

// TestClientRefusals: keys a checker would refuse, and request URIs a
// proof cannot name.
func TestClientRefusals(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]crypto.Signer{"P-224": mustEC(t, elliptic.P224()), "RSA 1024": small} {
		if _, err := NewClient(key); err == nil {
			t.Errorf("NewClient(%s) = nil error", name)
		}
	}
	c, err := NewClient(mustEC(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ method, uri string }{
		{"GET", "/relative"}, {"GET", "ftp://host/x"}, {"GET", "http://"}, {"", "https://api.example/"}, {"GET", "http://[::1"},
	} {
		if p, err := c.Proof(tt.method, tt.uri, "", ""); err == nil {
			t.Errorf("Proof(%q, %q) = %s, want an error", tt.method, tt.uri, p)
		}
	}
	if !strings.HasPrefix(c.Alg(), "ES") {
		t.Errorf("Alg = %s", c.Alg())
	}
}

// TestClientProofsVerifiedByJose: jose (node), an independent
// implementation, verifies Client's proofs of every key type with the
// embedded jwk, computes the same RFC 7638 thumbprint, and reads the claims
// RFC 9449 §4.2 requires.
func TestClientProofsVerifiedByJose(t *testing.T) {
	keys := clientKeys(t)
	var (
		clients []*Client
		proofs  []string
	)
	for _, alg := range []string{"ES256", "ES384", "ES512", "PS256", "EdDSA"} {
		c, err := NewClient(keys[alg])
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.Proof("POST", "https://api.example/orders?x=1#f", "the-token", "n-1")
		if err != nil {
			t.Fatal(err)
		}
		clients, proofs = append(clients, c), append(proofs, p)
	}
	// A proof whose payload changed after signing: jose must refuse it, or
	// its agreement above means nothing.
	parts := strings.Split(proofs[0], ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"htm":"GET"}`))
	verified := dpoptest.JoseVerify(t, append(proofs, strings.Join(parts, ".")))
	if last := verified[len(verified)-1]; last.Error == "" {
		t.Errorf("jose accepted a tampered proof: %+v", last)
	}
	for i, v := range verified[:len(proofs)] {
		c := clients[i]
		if v.Error != "" {
			t.Errorf("%s: jose refused the proof: %s", c.Alg(), v.Error)
			continue
		}
		if v.JKT != c.JKT() || v.Alg != c.Alg() {
			t.Errorf("%s: jose says jkt %s alg %s, Client says %s %s", c.Alg(), v.JKT, v.Alg, c.JKT(), c.Alg())
		}
		p := v.Payload
		if p["htm"] != "POST" || p["htu"] != "https://api.example/orders" || p["ath"] != TokenHash("the-token") || p["nonce"] != "n-1" {
			t.Errorf("%s: payload %v", c.Alg(), p)
		}
		if jti, _ := p["jti"].(string); len(jti) < 16 {
			t.Errorf("%s: jti %q is not a fresh random value", c.Alg(), jti)
		}
		if iat, _ := p["iat"].(float64); time.Since(time.Unix(int64(iat), 0)) > time.Minute {
			t.Errorf("%s: iat %v is not now", c.Alg(), p["iat"])
		}
	}
}
