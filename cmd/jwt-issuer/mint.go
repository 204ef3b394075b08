package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// keyFlags are the signing-key flags that mint and assertion share.
type keyFlags struct {
	file  string
	alg   string
	kid   string
	noKID bool
}

// bind adds -key (described by keyUsage), -alg, -kid and -no-kid to fs.
func (k *keyFlags) bind(fs *flag.FlagSet, keyUsage string) {
	fs.StringVar(&k.file, "key", "", keyUsage)
	fs.StringVar(&k.alg, "alg", "", "signing alg (default from the key: RSA→RS256, P-256→ES256, P-384→ES384, P-521→ES512, Ed25519→EdDSA;\nalso RS384, RS512, PS256, PS384, PS512 for RSA keys)")
	fs.StringVar(&k.kid, "kid", "", "kid header (default: the key's RFC 7638 thumbprint, as serve and jwks use)")
	fs.BoolVar(&k.noKID, "no-kid", false, "omit the kid header")
}

// check refuses a missing -key and kid flags that contradict each other;
// set names the flags given.
func (k *keyFlags) check(set map[string]bool) error {
	switch {
	case k.file == "":
		return errors.New("-key is required")
	case k.noKID && k.kid != "":
		return errors.New("-no-kid and a non-empty -kid contradict each other")
	case set["kid"] && k.kid == "" && !k.noKID:
		return errors.New("-kid is empty; add -no-kid to omit the kid")
	}
	return nil
}

// load reads the key and returns it with the JOSE header the flags ask
// for: a -kid given overrides the thumbprint.
func (k *keyFlags) load() (*signingKey, map[string]any, error) {
	signer, err := readPrivateKey(k.file)
	if err != nil {
		return nil, nil, err
	}
	key, err := newSigningKey(signer, k.alg)
	if err != nil {
		return nil, nil, err
	}
	header := map[string]any{}
	if k.kid != "" {
		header["kid"] = k.kid
	}
	return key, header, nil
}

// mintOptions are the flags of mint.
type mintOptions struct {
	key     keyFlags
	iss     string
	sub     string
	aud     string
	scope   string
	jti     string
	ttl     time.Duration
	nbf     time.Duration
	iat     time.Duration
	claims  pairs
	headers pairs
}

// mintFlags binds the flags of mint to o.
func mintFlags(o *mintOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("mint", flag.ContinueOnError)
	o.key.bind(fs, "PEM private key file (required)")
	fs.StringVar(&o.iss, "iss", "http://127.0.0.1:8080", "iss claim (empty: omitted)")
	fs.StringVar(&o.sub, "sub", "demo", "sub claim (empty: omitted)")
	fs.StringVar(&o.aud, "aud", "demo-api", "aud claim, comma-separated: one value is a string, several an array (empty: omitted)")
	fs.StringVar(&o.scope, "scope", "", "scope claim (empty: omitted)")
	fs.StringVar(&o.jti, "jti", "", "jti claim (default: a fresh random value, so /revoke can name the token; -jti '' omits it)")
	fs.DurationVar(&o.ttl, "ttl", 10*time.Minute, "exp = now + ttl; negative for an expired token; 0: no exp claim")
	fs.DurationVar(&o.nbf, "nbf", 0, "nbf = now + this offset (default: no nbf claim)")
	fs.DurationVar(&o.iat, "iat", 0, "iat = now + this offset")
	fs.Var(&o.claims, "claim", "extra claim name=value, repeatable; value is JSON if valid JSON, else a string;\ndotted names stay flat; overrides the claims above")
	fs.Var(&o.headers, "header", "extra JOSE header name=value, repeatable, same value rule (e.g. crit)")
	return fs
}

// runMint prints one signed token and a newline.
func runMint(args []string, stdout, stderr io.Writer, now time.Time) error {
	var o mintOptions
	fs := mintFlags(&o)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return fmt.Errorf("mint: unexpected argument %q", fs.Arg(0))
	}
	if err := o.key.check(set); err != nil {
		return fmt.Errorf("mint: %w", err)
	}
	key, header, err := o.key.load()
	if err != nil {
		return fmt.Errorf("mint: %w", err)
	}
	claims := o.mapClaims(now, set["nbf"])
	setJTI(claims, o.jti, set["jti"])
	for _, p := range o.claims {
		claims[p.name] = p.value
	}
	for _, p := range o.headers {
		header[p.name] = p.value
	}
	tok, err := key.sign(claims, header, !o.key.noKID)
	if err != nil {
		return fmt.Errorf("mint: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// mapClaims builds the registered claims from the flags.
func (o *mintOptions) mapClaims(now time.Time, withNBF bool) jwt.MapClaims {
	c := jwt.MapClaims{"iat": jwt.NewNumericDate(now.Add(o.iat))}
	if o.iss != "" {
		c["iss"] = o.iss
	}
	if o.sub != "" {
		c["sub"] = o.sub
	}
	setAudience(c, o.aud)
	if o.scope != "" {
		c["scope"] = o.scope
	}
	if o.ttl != 0 {
		c["exp"] = jwt.NewNumericDate(now.Add(o.ttl))
	}
	if withNBF {
		c["nbf"] = jwt.NewNumericDate(now.Add(o.nbf))
	}
	return c
}

// setAudience sets aud from a comma-separated list: one value as a string,
// several as an array (RFC 7519 §4.1.3), none not at all.
func setAudience(c jwt.MapClaims, list string) {
	if auds := splitList(list); len(auds) == 1 {
		c["aud"] = auds[0]
	} else if len(auds) > 1 {
		c["aud"] = auds
	}
}

// setJTI gives every token a fresh random jti unless -jti was given, since
// revocation and replay checks name tokens by it (RFC 7519 §4.1.7); an
// empty -jti omits it.
func setJTI(c jwt.MapClaims, jti string, given bool) {
	switch {
	case !given:
		c["jti"] = rand.Text()
	case jti != "":
		c["jti"] = jti
	}
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// pair is one name=value of -claim or -header.
type pair struct {
	name  string
	value any
}

// pairs is a repeatable name=value flag. A value that is valid JSON is
// decoded (numbers kept exact), anything else is a string.
type pairs []pair

func (p *pairs) String() string {
	if p == nil {
		return ""
	}
	parts := make([]string, len(*p))
	for i, v := range *p {
		parts[i] = fmt.Sprintf("%s=%v", v.name, v.value)
	}
	return strings.Join(parts, ",")
}

// Set parses one name=value.
func (p *pairs) Set(s string) error {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not name=value", s)
	}
	*p = append(*p, pair{name: name, value: parseValue(raw)})
	return nil
}

// parseValue decodes raw as JSON if it is valid JSON, else returns it as a
// string. Numbers stay json.Number so 1700000000.5 is signed as written.
func parseValue(raw string) any {
	if !json.Valid([]byte(raw)) {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	return v
}

// assertionOptions are the flags of assertion.
type assertionOptions struct {
	key    keyFlags
	client string
	aud    string
	jti    string
	ttl    time.Duration
}

// assertionFlags binds the flags of assertion to o.
func assertionFlags(o *assertionOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("assertion", flag.ContinueOnError)
	o.key.bind(fs, "the client's PEM private key file (required); CLIENT_KEYS holds its public key")
	fs.StringVar(&o.client, "client", "", "client_id: the iss and sub of the assertion (required)")
	fs.StringVar(&o.aud, "aud", "http://127.0.0.1:8080/token", "aud: the issuer's ISSUER_URL or its token endpoint; comma-separated for an array")
	fs.DurationVar(&o.ttl, "ttl", 5*time.Minute, "exp = now + ttl (serve refuses more than 1h)")
	fs.StringVar(&o.jti, "jti", "", "jti claim (default: a fresh random value; each assertion is single-use)")
	return fs
}

// runAssertion prints one RFC 7523 jwt-bearer assertion and a newline, to
// be posted to /token as grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer.
func runAssertion(args []string, stdout, stderr io.Writer, now time.Time) error {
	var o assertionOptions
	fs := assertionFlags(&o)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return fmt.Errorf("assertion: unexpected argument %q", fs.Arg(0))
	}
	if err := o.key.check(set); err != nil {
		return fmt.Errorf("assertion: %w", err)
	}
	if o.client == "" {
		return errors.New("assertion: -client is required")
	}
	key, header, err := o.key.load()
	if err != nil {
		return fmt.Errorf("assertion: %w", err)
	}
	// RFC 7523 §3: iss and sub are the client, aud the server, exp required.
	claims := jwt.MapClaims{
		"iss": o.client,
		"sub": o.client,
		"iat": jwt.NewNumericDate(now),
		"exp": jwt.NewNumericDate(now.Add(o.ttl)),
	}
	setAudience(claims, o.aud)
	setJTI(claims, o.jti, set["jti"])
	tok, err := key.sign(claims, header, !o.key.noKID)
	if err != nil {
		return fmt.Errorf("assertion: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
