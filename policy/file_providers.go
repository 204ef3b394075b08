package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"go.yaml.in/yaml/v3"
)

// keySourceFields are a provider's key sources, of which it sets exactly one.
var keySourceFields = []string{"jwks_url", "oidc_issuer_url", "jwks_file", "public_key_files", "hmac_secret_file"}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]*$`)

func (d *decoder) providers(pf *Spec, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.errorf(n, "providers", "want a list of at least one provider")
		return
	}
	seen := map[string]bool{}
	for i, item := range n.Content {
		path := fmt.Sprintf("providers[%d]", i)
		o := d.object(item, path, "provider")
		if o == nil {
			continue
		}
		p := d.provider(o, path)
		o.done()
		if p.Name != "" {
			if seen[p.Name] {
				d.errorf(o.node, path+".name", "provider %q is defined twice", p.Name)
			}
			seen[p.Name] = true
		}
		pf.Providers = append(pf.Providers, p)
	}
}

// provider reads one provider and checks what can be checked without the
// disk or the network, as Config.Validate does for the environment.
func (d *decoder) provider(o *object, path string) ProviderSpec {
	p := ProviderSpec{RequireExp: true, ClockSkew: 30 * time.Second, At: o.d.at(o.node)}
	field := func(name string) (*yaml.Node, string) { return o.get(name), path + "." + name }
	if n, fp := field("name"); n == nil {
		d.errorf(o.node, fp, "required")
	} else if s, ok := d.str(n, fp); ok {
		switch {
		case !namePattern.MatchString(s):
			d.errorf(n, fp, "%q: a name is letters, digits and _ . : / -", s)
		case s == "public" || s == "deny":
			d.errorf(n, fp, "%q is a requirement, not a provider name", s)
		}
		p.Name = s
	}
	d.keySource(o, path, &p)
	d.keySourceAccess(o, path, &p)
	var issuer string
	if n, fp := field("issuer"); n != nil {
		issuer, _ = d.str(n, fp)
		if p.OIDCIssuerURL != "" && issuer != "" && issuer != p.OIDCIssuerURL {
			d.errorf(n, fp, "%q differs from oidc_issuer_url %q, whose keys verify only its own tokens", issuer, p.OIDCIssuerURL)
		}
	} else if p.OIDCIssuerURL == "" {
		d.errorf(o.node, fp, "required (the iss of this provider's tokens), unless oidc_issuer_url names it")
	}
	if issuer == "" {
		issuer = p.OIDCIssuerURL
	}
	p.Issuers = []string{issuer}
	if n, fp := field("audiences"); n != nil {
		p.Audiences = d.strings(n, fp)
	}
	if n, fp := field("algorithms"); n != nil {
		p.Algorithms = d.strings(n, fp)
		for _, msg := range config.AlgorithmProblems(p.Algorithms, "hmac_secret_file", p.HMACSecretFile != "") {
			d.errorf(n, fp, "%s", msg)
		}
	} else if p.HMACSecretFile != "" {
		p.Algorithms = slices.Clone(config.HMACAlgorithms)
	} else {
		p.Algorithms = slices.Clone(config.DefaultAlgorithms)
	}
	if n, fp := field("clock_skew"); n != nil {
		p.ClockSkew = d.duration(n, fp)
		if p.ClockSkew < 0 || p.ClockSkew > 5*time.Minute {
			d.errorf(n, fp, "%s: want between 0 and 5m; fix the clocks instead", p.ClockSkew)
		}
	}
	if n, fp := field("require_exp"); n != nil {
		p.RequireExp = d.boolean(n, fp)
	}
	p.TokenLookup = []config.Lookup{{Kind: config.InHeader, Name: "Authorization"}}
	if n, fp := field("token_lookup"); n != nil {
		items := d.strings(n, fp)
		p.TokenLookup = nil
		for i, item := range items {
			l, err := config.ParseLookups(item)
			if err != nil || strings.Contains(item, ",") {
				d.errorf(resolveAlias(n.Content[i]), fmt.Sprintf("%s[%d]", fp, i), "%q: want header:NAME, cookie:NAME or query:NAME", item)
				continue
			}
			p.TokenLookup = append(p.TokenLookup, l...)
		}
		if len(items) == 0 {
			d.errorf(n, fp, "name at least one place")
		}
	}
	if n, fp := field("claims_to_headers"); n != nil {
		p.ClaimsToHeaders = d.claimHeaders(n, fp)
	}
	if n, fp := field("payload_header"); n != nil {
		if s, ok := d.str(n, fp); ok {
			for _, msg := range config.PayloadHeaderProblems(s, p.ClaimsToHeaders, "in claims_to_headers") {
				d.errorf(n, fp, "%s", msg)
			}
			p.PayloadHeader = s
		}
	}
	if n, fp := field("forward_token"); n != nil {
		p.ForwardToken = d.boolean(n, fp)
	}
	if n, fp := field("login"); n != nil {
		p.Login = d.login(n, fp, &p)
	}
	if n, fp := field("typ"); n != nil {
		if s, ok := d.str(n, fp); ok {
			if s == "" || strings.ContainsAny(s, " \t,") {
				d.errorf(n, fp, "%q: want one media type such as at+jwt", s)
			}
			p.RequiredTyp = s
		}
	}
	if n, fp := field("max_lifetime"); n != nil {
		if p.MaxLifetime = d.duration(n, fp); p.MaxLifetime < 0 {
			d.errorf(n, fp, "%s: must not be negative (0 turns the check off)", p.MaxLifetime)
		}
	}
	if n, fp := field("allow_sender_constrained"); n != nil {
		p.AllowSenderConstrained = d.boolean(n, fp)
	}
	return p
}

// claimHeaders reads claims_to_headers: a mapping of claim paths to
// header names, in the file's order.
func (d *decoder) claimHeaders(n *yaml.Node, path string) []config.ClaimHeader {
	var out []config.ClaimHeader
	d.claimMap(n, path, "a mapping of claim: Header, e.g. {sub: X-Auth-Subject}", func(claim, fp string, v *yaml.Node) {
		header, ok := d.str(v, fp)
		if !ok {
			return
		}
		parsed, err := config.ParseClaimHeaders(claim + "=" + header)
		if err != nil || len(parsed) != 1 || strings.ContainsAny(claim, ",=") {
			d.errorf(v, fp, "%s: %v", header, headerError(err))
			return
		}
		if slices.ContainsFunc(out, func(seen config.ClaimHeader) bool { return config.SameHeader(seen.Header, parsed[0].Header) }) {
			d.errorf(v, fp, "header %s is mapped twice", header)
			return
		}
		out = append(out, parsed[0])
	})
	return out
}

// claimMap reads a mapping keyed by claim paths, in the file's order,
// calling f with each claim, its field path and its value. want says what
// the mapping holds, for the error when n is no mapping.
func (d *decoder) claimMap(n *yaml.Node, path, want string, f func(claim, fp string, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want %s, not %s", want, describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if claim, ok := d.str(n.Content[i], path); ok {
			f(claim, path+"."+claim, resolveAlias(n.Content[i+1]))
		}
	}
}

func headerError(err error) error {
	if err == nil {
		return errors.New("a claim name holds neither ',' nor '='")
	}
	// ParseClaimHeaders quotes the CLAIM=HEADER entry; the field path
	// already says which claim.
	msg := err.Error()
	if i := strings.Index(msg, `": `); i >= 0 {
		msg = msg[i+3:]
	}
	return errors.New(msg)
}

// crossChecks are the checks across providers: a claim header that is also
// where a provider reads its token would delete every such token when the
// claim headers are scrubbed.
func (d *decoder) crossChecks(pf *Spec) {
	for i, p := range pf.Providers {
		var headers []string
		for _, ch := range p.ClaimsToHeaders {
			headers = append(headers, ch.Header)
		}
		if p.PayloadHeader != "" {
			headers = append(headers, p.PayloadHeader)
		}
		for _, h := range headers {
			for _, q := range pf.Providers {
				for _, l := range q.TokenLookup {
					if l.Kind == config.InHeader && config.SameHeader(h, l.Name) {
						d.errs = append(d.errs, fmt.Errorf("%s: providers[%d].claims_to_headers: header %s is where provider %s reads its token; as a claim header it would be scrubbed from every request", p.At, i, h, q.Name))
					}
				}
			}
		}
	}
}

// keySource reads a provider's one key source: exactly one of
// keySourceFields.
func (d *decoder) keySource(o *object, path string, p *ProviderSpec) {
	var sources []string
	for _, name := range keySourceFields {
		n, fp := o.get(name), path+"."+name
		if n == nil {
			continue
		}
		sources = append(sources, name)
		p.KeyField, p.KeyAt = fp, d.at(n)
		switch name {
		case "jwks_url":
			if s, ok := d.str(n, fp); ok {
				if !config.AbsoluteHTTP(s) {
					d.errorf(n, fp, "%q is not an absolute http(s) URL", s)
				}
				p.JWKSURLs = []string{s}
			}
		case "oidc_issuer_url":
			if s, ok := d.str(n, fp); ok {
				if !config.AbsoluteHTTP(s) {
					d.errorf(n, fp, "%q is not an absolute http(s) URL", s)
				}
				p.OIDCIssuerURL = s
			}
		case "jwks_file":
			p.JWKSFile, _ = d.str(n, fp)
		case "public_key_files":
			p.PublicKeyFiles = d.strings(n, fp)
			if len(p.PublicKeyFiles) == 0 {
				d.errorf(n, fp, "name at least one PEM file")
			}
		case "hmac_secret_file":
			p.HMACSecretFile, _ = d.str(n, fp)
		}
	}
	switch len(sources) {
	case 0:
		d.errorf(o.node, path, "no key source: set exactly one of %s", strings.Join(keySourceFields, ", "))
	case 1:
	default:
		d.errorf(o.node, path, "%s: set exactly one key source; a provider is one issuer with one place for its keys", strings.Join(sources, " and "))
	}
}

// keySourceAccess reads ca_file and bearer_token_file: how a remote key
// source (jwks_url, oidc_issuer_url) reaches its issuer. The files are read
// when the policy is built; here only their place is checked.
func (d *decoder) keySourceAccess(o *object, path string, p *ProviderSpec) {
	remote := len(p.JWKSURLs) > 0 || p.OIDCIssuerURL != ""
	for _, name := range []string{"bearer_token_file", "ca_file"} {
		n, fp := o.get(name), path+"."+name
		if n == nil {
			continue
		}
		file, ok := d.str(n, fp)
		if !ok {
			continue
		}
		if !remote {
			d.errorf(n, fp, "applies only to jwks_url and oidc_issuer_url, which are fetched over the network")
		}
		switch name {
		case "ca_file":
			p.CAFile, p.CAFileAt = file, d.at(n)+": "+fp
		case "bearer_token_file":
			p.BearerTokenFile, p.TokenFileAt = file, d.at(n)+": "+fp
			for _, u := range append(slices.Clone(p.JWKSURLs), p.OIDCIssuerURL) {
				if u != "" && config.AbsoluteHTTP(u) && !config.TokenSafe(u) {
					d.errorf(n, fp, "the token would cross the network in plain text to %s; use https (plain http only to loopback)", u)
				}
			}
		}
	}
}
