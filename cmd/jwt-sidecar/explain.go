package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

const explainUsage = `Usage: jwt-sidecar explain [--method M] [--path P] [--host H] [--lookup WHERE] [--dpop PROOF] [--cert FILE] TOKEN

Says whether a request carrying TOKEN would pass, and if not, exactly why:
the decoded token (times as RFC 3339 with their age), the rule that
applies and why the rules before it did not, each provider tried, and the
verdict with the status, reason, error_description and the detail the
proxy would log. A sender-constrained token (cnf) is explained with what
the request must carry: for DPoP (cnf.jkt) the scheme and the proof's htm,
htu and ath, each checked against --dpop PROOF when given; for mTLS
(cnf.x5t#S256) the client certificate, compared with --cert. With a
revocation list configured, it says whether the list revokes the token and
by which entry. It reads the same environment and CONFIG_FILE as the
proxy, fetches the keys they name, and runs the proxy's own decision.
TOKEN "-" reads the token from standard input; "" explains a request
without a token. "DPoP TOKEN" (or --dpop) sends it with the DPoP scheme.

Exit code: 0 the request would be forwarded, 1 refused, 2 configuration
or usage error.

Flags:
`

// explain is jwt-sidecar explain: flags, the request it builds, the
// proxy's own decision, and the report, in that order. Each step is a
// few lines; splitting them would only pass the flags around.
func explain(ctx context.Context, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	method := fs.String("method", http.MethodGet, "the request method")
	path := fs.String("path", "/", "the request path (as the client sends it; it is cleaned as the proxy cleans it)")
	host := fs.String("host", "", "the Host header, for rules that match hosts")
	lookup := fs.String("lookup", "", "where the token travels: header:NAME, cookie:NAME or query:NAME (default: the first place the rule's first provider reads)")
	proof := fs.String("dpop", "", "a DPoP proof (RFC 9449) to send in the DPoP header; the token then goes as Authorization: DPoP")
	certFile := fs.String("cert", "", "a PEM client certificate the request is explained as presenting over TLS (for cnf x5t#S256 tokens)")
	// The flag package prints Usage itself on -h; --help is printed once,
	// below, on standard output.
	fs.Usage = func() {}
	// Flags may come before or after TOKEN: parse, take one argument,
	// parse the rest.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				fmt.Fprint(stdout, explainUsage)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return cli.ExitOK
			}
			fmt.Fprintln(stderr, "jwt-sidecar explain: see --help")
			return cli.ExitConfig
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "jwt-sidecar explain: give exactly one TOKEN (\"-\" for standard input); see --help")
		return cli.ExitConfig
	}
	token := positional[0]
	if token == "-" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 1<<20)).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(stderr, "jwt-sidecar explain: reading the token: %v\n", err)
			return cli.ExitConfig
		}
		token = line
	}
	token = strings.TrimSpace(token)
	scheme := verifier.SchemeBearer
	if len(token) >= 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if len(token) >= 5 && strings.EqualFold(token[:5], "dpop ") {
		token, scheme = strings.TrimSpace(token[5:]), verifier.SchemeDPoP
	}
	if *proof != "" {
		scheme = verifier.SchemeDPoP
	}
	var cert *x509.Certificate
	if *certFile != "" {
		c, err := readCertificate(*certFile)
		if err != nil {
			fmt.Fprintf(stderr, "jwt-sidecar explain: --cert: %v\n", err)
			return cli.ExitConfig
		}
		cert = c
	}
	if !strings.HasPrefix(*path, "/") {
		fmt.Fprintln(stderr, "jwt-sidecar explain: --path must start with /")
		return cli.ExitConfig
	}

	_, a, err := quietApp(env)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-sidecar", err)
	}
	w := &explainer{out: stdout, now: time.Now()}

	r, err := http.NewRequestWithContext(ctx, *method, "http://sidecar"+*path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "jwt-sidecar explain: %v\n", err)
		return cli.ExitConfig
	}
	if *host != "" {
		r.Host = *host
	}
	if cert != nil {
		presentCertificate(r, cert)
	}
	where, err := tokenPlace(a, r, *lookup)
	if err != nil {
		fmt.Fprintf(stderr, "jwt-sidecar explain: --lookup: %v\n", err)
		return cli.ExitConfig
	}
	if scheme == verifier.SchemeDPoP && (where.Kind != config.InHeader || where.Name != "Authorization") {
		fmt.Fprintf(stderr, "jwt-sidecar explain: the DPoP scheme travels only in the Authorization header, not in %s\n", where)
		return cli.ExitConfig
	}
	if token != "" {
		putToken(r, where, scheme, token)
	}
	if *proof != "" {
		r.Header.Set("DPoP", strings.TrimSpace(*proof))
	}

	w.token(token)
	w.section("request")
	w.line("%s %s (host %s)", r.Method, r.URL.RequestURI(), r.Host)
	w.line("path as sent %s; cleaned, as rules match it and the upstream gets it: %s", r.URL.EscapedPath(), config.CleanPath(r.URL.Path))
	if why := config.AmbiguousPath(r.URL.Path); why != "" {
		w.line("ambiguous after one decode: %s", why)
	}
	if token != "" {
		w.line("token in %s (scheme %s)", where, scheme)
	}
	if cert != nil {
		w.line("over TLS, presenting the client certificate %s", cert.Subject)
	}
	if err := a.loadKeys(ctx); err != nil {
		w.section("keys")
		for _, line := range strings.Split(err.Error(), "\n") {
			w.line("not loaded: %s (its tokens get unknown_key, as the proxy would answer now)", line)
		}
	}
	claims := claimsOf(token)
	if token != "" {
		w.sender(a, r, claims, token, scheme, *proof, cert)
	}
	w.revocations(ctx, a, claims)
	ex := a.proxy.Explain(r)
	if why := config.AmbiguousPath(r.URL.Path); why != "" {
		readings := strings.Join(config.PathReadings(r.URL.Path), " ")
		if ex.Rule != nil && ex.Rule.RawPaths && ex.Reason != verifier.AmbiguousPath {
			w.line("forwarded anyway: rule %s has raw_paths, and every reading a backend may make of the path matches it (%s)", ex.Rule.Name, readings)
		} else {
			w.line("refused unless one rule with raw_paths governs every reading a backend may make of the path (%s)", readings)
		}
	}
	w.rules(ex)
	w.providers(ex)
	w.verdict(ex)
	if ex.Forwarded {
		return cli.ExitOK
	}
	return cli.ExitFailed
}

// loadKeys loads every key source once, as the proxy does at start.
func (a *app) loadKeys(ctx context.Context) error { return a.rt.loadOnce(ctx) }

// tokenPlace is where explain puts the token: --lookup, else the first
// place the first provider of the rule that applies reads.
func tokenPlace(a *app, r *http.Request, flagValue string) (config.Lookup, error) {
	if flagValue != "" {
		l, err := config.ParseLookups(flagValue)
		if err != nil {
			return config.Lookup{}, err
		}
		return l[0], nil
	}
	def := config.Lookup{Kind: config.InHeader, Name: "Authorization"}
	rule := a.proxy.Policy().Match(r, config.CleanPath(r.URL.Path), nil)
	if len(rule.Require.Providers) == 0 {
		return def, nil
	}
	for _, p := range a.rt.current.Load().spec.Providers {
		if p.Name == rule.Require.Providers[0] && len(p.TokenLookup) > 0 {
			return p.TokenLookup[0], nil
		}
	}
	return def, nil
}

func putToken(r *http.Request, l config.Lookup, scheme, token string) {
	switch l.Kind {
	case config.InCookie:
		r.AddCookie(&http.Cookie{Name: l.Name, Value: token})
	case config.InQuery:
		q := r.URL.Query()
		q.Add(l.Name, token)
		r.URL.RawQuery = q.Encode()
	default:
		r.Header.Add(l.Name, scheme+" "+token)
	}
}

// explainer writes the report.
type explainer struct {
	out io.Writer
	now time.Time
}

func (w *explainer) section(name string) { fmt.Fprintf(w.out, "%s\n", name) }

func (w *explainer) line(format string, args ...any) {
	fmt.Fprintf(w.out, "  "+format+"\n", args...)
}

// token prints the token's header and claims, decoded without verifying
// anything: they are what the token says, not what is true.
func (w *explainer) token(token string) {
	w.section("token (decoded, not verified)")
	if token == "" {
		w.line("none")
		return
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		w.line("not a compact JWS: %d part(s) separated by '.', want 3", len(parts))
		return
	}
	for i, name := range []string{"header", "claims"} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			w.line("%s: not base64url: %v", name, err)
			continue
		}
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			w.line("%s: not a JSON object: %v", name, err)
			continue
		}
		w.line("%s:", name)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, _ := json.Marshal(m[k])
			note := ""
			if name == "claims" && (k == "exp" || k == "nbf" || k == "iat") {
				note = w.when(m[k])
			}
			w.line("  %s: %s%s", k, v, note)
		}
	}
}

// when renders a NumericDate as RFC 3339 and its distance from now.
func (w *explainer) when(v any) string {
	n, ok := v.(json.Number)
	if !ok {
		return " (not a number)"
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
		return " (not a date)"
	}
	sec, frac := math.Modf(f)
	t := time.Unix(int64(sec), int64(frac*1e9)).UTC()
	d := t.Sub(w.now).Round(time.Second)
	rel := "now"
	switch {
	case d > 0:
		rel = "in " + d.String()
	case d < 0:
		rel = (-d).String() + " ago"
	}
	return fmt.Sprintf(" (%s, %s)", t.Format(time.RFC3339), rel)
}

func (w *explainer) rules(ex proxy.Explanation) {
	w.section("rules (first match wins)")
	if ex.Rule == nil {
		w.line("none: the path is ambiguous, refused before any rule (PATH_STRICT)")
		return
	}
	for _, rt := range ex.Trace.Rules {
		r := rt.Rule
		if rt.Mismatch == policy.Matched {
			w.line("%s: applies (%s) -> %s", r.Name, matchView(r), requirementText(r.Require))
			continue
		}
		w.line("%s: no, %s", r.Name, mismatchText(r, rt.Mismatch))
	}
}

func matchView(r *policy.Rule) string {
	m := r.Match
	var parts []string
	switch {
	case m.Path != "":
		parts = append(parts, "path "+m.Path)
	case m.Prefix != "":
		parts = append(parts, "prefix "+m.Prefix)
	case m.Glob != "":
		parts = append(parts, "glob "+m.Glob)
	default:
		return "no other rule matched"
	}
	if len(m.Methods) > 0 {
		parts = append(parts, "methods "+strings.Join(m.Methods, ","))
	}
	if len(m.Hosts) > 0 {
		parts = append(parts, "hosts "+strings.Join(m.Hosts, ","))
	}
	if r.RawPaths {
		parts = append(parts, "raw_paths: ambiguous paths forwarded")
	}
	return strings.Join(parts, ", ")
}

func mismatchText(r *policy.Rule, mm policy.Mismatch) string {
	m := r.Match
	switch mm {
	case policy.PathMismatch:
		return "the path does not match " + matchView(&policy.Rule{Match: policy.Match{Path: m.Path, Prefix: m.Prefix, Glob: m.Glob}})
	case policy.MethodMismatch:
		return "the method is not one of " + strings.Join(m.Methods, ", ")
	case policy.HostMismatch:
		return "the host is not one of " + strings.Join(m.Hosts, ", ")
	}
	return mm.String()
}

func requirementText(req policy.Requirement) string {
	var s string
	switch req.Kind {
	case policy.RequirePublic:
		return "public: no token needed"
	case policy.RequireDeny:
		return "deny: refused whatever the token"
	case policy.RequireAnyOf:
		s = "a token of " + strings.Join(req.Providers, " or ")
	case policy.RequireAllOf:
		s = "a token of each of " + strings.Join(req.Providers, " and ")
	case policy.RequireAllowMissing:
		s = "no token, or a valid token of " + strings.Join(req.Providers, " or ")
	}
	if len(req.Scopes) > 0 {
		s += "; scopes " + strings.Join(req.Scopes, " ")
	}
	for _, c := range req.Claims {
		vals := make([]string, len(c.Values))
		for i, v := range c.Values {
			b, _ := json.Marshal(v)
			vals[i] = string(b)
		}
		s += fmt.Sprintf("; claim %s = %s", c.Claim, strings.Join(vals, " or "))
	}
	return s
}

func (w *explainer) providers(ex proxy.Explanation) {
	if len(ex.Trace.Providers) == 0 {
		return
	}
	w.section("providers tried")
	for _, p := range ex.Trace.Providers {
		if p.Err == nil {
			c := p.Claims
			w.line("%s: verified (iss %s, sub %s, kid %s)", p.Provider, c.Issuer, c.Subject, orNone(c.KeyID))
			continue
		}
		reason, _ := verifier.ReasonOf(p.Err)
		w.line("%s: %s (%v)", p.Provider, reason, p.Err)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (w *explainer) verdict(ex proxy.Explanation) {
	w.section("verdict")
	if ex.Forwarded {
		who := "anonymously"
		if len(ex.Verified) > 0 {
			who = "verified by " + strings.Join(ex.Verified, " and ")
		}
		w.line("ALLOWED: forwarded to the upstream, %s (outcome %s)", who, ex.Outcome)
		var names []string
		for k := range ex.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			w.line("header %s: %s", k, strings.Join(ex.Headers[k], ", "))
		}
		for _, k := range ex.Removed {
			w.line("token removed from header %s", k)
		}
		return
	}
	w.line("REFUSED: %d %s (reason %s, outcome %s)", ex.Status, ex.Error, orNone(string(ex.Reason)), ex.Outcome)
	w.line("error_description: %s", ex.Description)
	if ex.Detail != nil {
		w.line("logged detail: %v", ex.Detail)
	}
}
