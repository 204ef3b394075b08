package verifier_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// signRaw signs exactly header and payload, byte for byte, so a test can
// give a token a genuine signature over bytes no JSON encoder would write.
func signRaw(t *testing.T, s signer, header, payload string) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.GetSigningMethod(s.Alg).Sign(in, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestOneJSONObject: a genuinely signed header or payload that is not
// exactly one JSON object in valid UTF-8 is malformed (RFC 7519 §7.2).
func TestOneJSONObject(t *testing.T) {
	f := newFixture(t, nil)
	payload, err := json.Marshal(claims(issA))
	if err != nil {
		t.Fatal(err)
	}
	p := string(payload)
	hdr := `{"alg":"RS256","kid":"` + f.rsa.KID + `","typ":"JWT"}`
	tests := []struct {
		name, header, payload string
		wantReason            verifier.Reason
	}{
		{name: "valid", header: hdr, payload: p},
		{name: "whitespace around", header: " " + hdr + "\n", payload: "\t" + p + " "},
		{name: "trailing bytes after the payload", header: hdr, payload: p + "x", wantReason: verifier.Malformed},
		{name: "a second payload object", header: hdr, payload: p + `{"sub":"admin"}`, wantReason: verifier.Malformed},
		{name: "a second header object", header: hdr + `{"alg":"none"}`, payload: p, wantReason: verifier.Malformed},
		{name: "invalid UTF-8 in the payload", header: hdr, payload: strings.Replace(p, `"sub":"`, "\"sub\":\"\xff", 1), wantReason: verifier.Malformed},
		{name: "invalid UTF-8 in the header", header: strings.Replace(hdr, `"typ":"JWT"`, "\"typ\":\"J\xc3WT\"", 1), payload: p, wantReason: verifier.Malformed},
		{name: "payload an array", header: hdr, payload: "[" + p + "]", wantReason: verifier.Malformed},
		{name: "payload a string", header: hdr, payload: `"x"`, wantReason: verifier.Malformed},
		{name: "a large payload past the stack buffer", header: hdr, payload: p[:len(p)-1] + `,"pad":"` + strings.Repeat("a", 5000) + `"}` + "x", wantReason: verifier.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signRaw(t, f.rsa, tt.header, tt.payload)
			_, err := f.v.Verify(t.Context(), bearer(tok))
			if got := reasonOf(err); got != tt.wantReason {
				t.Fatalf("reason %q, want %q (%v)", got, tt.wantReason, err)
			}
		})
	}
}

// TestTokenRules: typ, maximum lifetime and cnf, per verifier.
func TestTokenRules(t *testing.T) {
	a := claims(issA)
	tests := []struct {
		name       string
		opts       func(*verifier.Options)
		claims     jwt.MapClaims
		typ        any
		wantReason verifier.Reason
	}{
		{name: "typ unchecked by default", claims: a, typ: "whatever"},
		{name: "at+jwt required and given", opts: func(o *verifier.Options) { o.RequiredTyp = "at+jwt" }, claims: a, typ: "at+jwt"},
		{name: "media type form and case", opts: func(o *verifier.Options) { o.RequiredTyp = "at+jwt" }, claims: a, typ: "Application/AT+JWT"},
		{name: "required form with application/", opts: func(o *verifier.Options) { o.RequiredTyp = "application/at+jwt" }, claims: a, typ: "at+jwt"},
		{name: "an id token at an API", opts: func(o *verifier.Options) { o.RequiredTyp = "at+jwt" }, claims: a, typ: "JWT", wantReason: verifier.BadType},
		{name: "typ missing", opts: func(o *verifier.Options) { o.RequiredTyp = "at+jwt" }, claims: a, wantReason: verifier.BadType},
		{name: "typ not a string", opts: func(o *verifier.Options) { o.RequiredTyp = "at+jwt" }, claims: a, typ: 7, wantReason: verifier.BadType},
		{name: "lifetime within", opts: func(o *verifier.Options) { o.MaxLifetime = time.Hour }, claims: with(a, "iat", base.Add(-time.Minute).Unix(), "exp", base.Add(59*time.Minute).Unix())},
		{name: "lifetime exceeded", opts: func(o *verifier.Options) { o.MaxLifetime = time.Hour }, claims: with(a, "iat", base.Add(-time.Minute).Unix(), "exp", base.Add(24*time.Hour).Unix()), wantReason: verifier.ExcessiveLifetime},
		{name: "lifetime without iat", opts: func(o *verifier.Options) { o.MaxLifetime = time.Hour }, claims: with(a, "iat", nil), wantReason: verifier.ExcessiveLifetime},
		{name: "lifetime off by default", claims: with(a, "iat", base.Add(-time.Minute).Unix(), "exp", base.Add(365*24*time.Hour).Unix())},
		{name: "cnf refused by default", claims: with(a, "cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}), wantReason: verifier.DPoPMismatch},
		{name: "cnf x5t refused by default", claims: with(a, "cnf", map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}), wantReason: verifier.MTLSMissing},
		{name: "cnf accepted when opted in", opts: func(o *verifier.Options) { o.AllowSenderConstrained = true }, claims: with(a, "cnf", map[string]any{"jkt": "x"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			var extra map[string]any
			if tt.typ != nil {
				extra = map[string]any{"typ": tt.typ}
			}
			tok := f.rsa.SignWith(t, tt.claims, extra)
			if tt.typ == nil {
				// golang-jwt writes typ JWT; drop it for "typ missing".
				tok = signRaw(t, f.rsa, `{"alg":"RS256","kid":"`+f.rsa.KID+`"}`, mustJSON(t, tt.claims))
			}
			_, err := f.v.Verify(t.Context(), bearer(tok))
			if got := reasonOf(err); got != tt.wantReason {
				t.Fatalf("reason %q, want %q (%v)", got, tt.wantReason, err)
			}
		})
	}
	src, err := keys.NewStaticSource("s", []string{issA}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.New(verifier.Options{Keys: mustKeys(t, keys.KeyOptions{}, nil, src), MaxLifetime: -time.Second}); err == nil {
		t.Error("a negative maximum lifetime was accepted")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
