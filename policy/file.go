package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// maxFileBytes bounds CONFIG_FILE: a policy a person reads at a glance is a
// few kilobytes.
const maxFileBytes = 1 << 20

// fileFields are the fields each object of the file accepts. The decoder
// refuses any other, and a test checks that docs/config.schema.json
// declares exactly these.
var fileFields = map[string][]string{
	"":            {"providers", "rules", "default"},
	"provider":    {"name", "issuer", "jwks_url", "oidc_issuer_url", "jwks_file", "public_key_files", "hmac_secret_file", "audiences", "algorithms", "clock_skew", "require_exp", "token_lookup", "claims_to_headers", "payload_header", "forward_token"},
	"rule":        {"name", "match", "require", "scopes", "claims"},
	"match":       {"path", "prefix", "glob", "methods", "hosts"},
	"requirement": {"any_of", "all_of", "allow_missing"},
	"default":     {"require", "scopes", "claims"},
}

// keySourceFields are a provider's key sources, of which it sets exactly one.
var keySourceFields = []string{"jwks_url", "oidc_issuer_url", "jwks_file", "public_key_files", "hmac_secret_file"}

// ReadFile reads and decodes CONFIG_FILE. Every problem is reported
// at once, each as FILE:LINE: FIELD: PROBLEM.
func ReadFile(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("CONFIG_FILE: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("CONFIG_FILE: %w", err)
	}
	if len(raw) > maxFileBytes {
		return nil, fmt.Errorf("CONFIG_FILE: %s exceeds %d bytes", path, maxFileBytes)
	}
	return Decode(path, raw)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Decode decodes raw through yaml.Node, so that every error names its
// line and field, and unknown fields are refused.
func Decode(path string, raw []byte) (*Spec, error) {
	d := &decoder{file: path}
	pf := &Spec{Source: path, Sum: sha256.Sum256(raw)}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", path, m[1], m[2])
		}
		return nil, fmt.Errorf("%s: %s", path, msg)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty; it needs at least providers", path)
	}
	root := d.object(doc.Content[0], "", "")
	if root == nil {
		return nil, d.err()
	}
	if n := root.get("providers"); n != nil {
		d.providers(pf, n)
	} else {
		d.errorf(doc.Content[0], "providers", "required: at least one provider")
	}
	names := map[string]bool{}
	for _, p := range pf.Providers {
		names[p.Name] = true
	}
	if n := root.get("rules"); n != nil {
		d.rules(pf, n, names)
	}
	if n := root.get("default"); n != nil {
		o := d.object(n, "default", "default")
		if o != nil {
			pf.Default = d.requirementOf(o, "default", names)
			pf.DefaultSet = true
			o.done()
		}
	}
	root.done()
	d.crossChecks(pf)
	if err := d.err(); err != nil {
		return nil, err
	}
	return pf, nil
}

// decoder collects errors, each with the file, line and field path.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s", d.file, n.Line, msg))
}

func (d *decoder) err() error { return errors.Join(d.errs...) }

// at is FILE:LINE of n.
func (d *decoder) at(n *yaml.Node) string { return fmt.Sprintf("%s:%d", d.file, n.Line) }

// resolveAlias follows an alias to the node it names.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// object is a mapping node whose fields are checked against fileFields.
type object struct {
	d      *decoder
	node   *yaml.Node
	path   string
	kind   string
	fields map[string]*yaml.Node
	used   map[string]bool
}

// object reads a mapping of the given kind (a key of fileFields). It
// refuses unknown and repeated fields, naming the known ones.
func (d *decoder) object(n *yaml.Node, path, kind string) *object {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping (field: value), not %s", describe(n))
		return nil
	}
	o := &object{d: d, node: n, path: path, kind: kind, fields: map[string]*yaml.Node{}, used: map[string]bool{}}
	allowed := fileFields[kind]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a field name must be a plain word")
			continue
		}
		if !slices.Contains(allowed, k.Value) {
			d.errorf(k, join(path, k.Value), "unknown field; known fields are %s", strings.Join(allowed, ", "))
			continue
		}
		if _, dup := o.fields[k.Value]; dup {
			d.errorf(k, join(path, k.Value), "set twice")
			continue
		}
		o.fields[k.Value] = v
	}
	return o
}

// get returns a field's value node, or nil when absent.
func (o *object) get(name string) *yaml.Node {
	if !slices.Contains(fileFields[o.kind], name) {
		panic("decoder: field " + name + " is not declared for " + o.kind)
	}
	o.used[name] = true
	return resolveAlias(o.fields[name])
}

// done reports fields the file set that the decoder never read: a field
// declared in fileFields but forgotten in the code would otherwise be
// accepted and ignored.
func (o *object) done() {
	for name := range o.fields {
		if !o.used[name] {
			o.d.errorf(o.fields[name], join(o.path, name), "accepted but not read: a bug in jwt-sidecar")
		}
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		}
		return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "this"
}

// str reads a string. YAML's other scalars are refused rather than
// converted, as the schema does: quote them ("123").
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			hint = fmt.Sprintf(` (quote it: "%s")`, n.Value)
		}
		d.errorf(n, path, "want a string, not %s%s", describe(n), hint)
		return "", false
	}
	if n.Value == "" {
		d.errorf(n, path, "must not be empty")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, path, "want true or false, not %s", describe(n))
		return false
	}
	b, _ := strconv.ParseBool(n.Value)
	return b
}

func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	s, ok := d.str(n, path)
	if !ok {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, path, "want a Go duration such as 30s or 1m30s, not %q", s)
	}
	return v
}

// strings reads a list of strings; an item listed twice is refused.
func (d *decoder) strings(n *yaml.Node, path string) []string {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, e.g. [a, b], not %s", describe(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		item = resolveAlias(item)
		p := fmt.Sprintf("%s[%d]", path, i)
		s, ok := d.str(item, p)
		if !ok {
			continue
		}
		if slices.Contains(out, s) {
			d.errorf(item, p, "%q is listed twice", s)
			continue
		}
		out = append(out, s)
	}
	return out
}

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
	var sources []string
	for _, name := range keySourceFields {
		n, fp := field(name)
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

func (d *decoder) rules(pf *Spec, n *yaml.Node, providers map[string]bool) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "rules", "want a list of rules, not %s", describe(n))
		return
	}
	seen := map[string]bool{DefaultRule: true}
	for i, item := range n.Content {
		path := fmt.Sprintf("rules[%d]", i)
		o := d.object(item, path, "rule")
		if o == nil {
			continue
		}
		var r Rule
		if nn := o.get("name"); nn == nil {
			d.errorf(o.node, path+".name", "required: rules are named in logs, metrics and explain")
		} else if s, ok := d.str(nn, path+".name"); ok {
			if !namePattern.MatchString(s) {
				d.errorf(nn, path+".name", "%q: a name is letters, digits and _ . : / -", s)
			}
			if seen[s] {
				d.errorf(nn, path+".name", "%q is taken", s)
			}
			seen[s] = true
			r.Name = s
		}
		if m := o.get("match"); m == nil {
			d.errorf(o.node, path+".match", "required (prefix: / matches every request)")
		} else {
			r.Match = d.match(m, path+".match")
		}
		r.Require = d.requirementOf(o, path, providers)
		o.done()
		pf.Rules = append(pf.Rules, r)
	}
}

func (d *decoder) match(n *yaml.Node, path string) Match {
	o := d.object(n, path, "match")
	if o == nil {
		return Match{}
	}
	defer o.done()
	var m Match
	for _, f := range []struct {
		name string
		dst  *string
	}{{"path", &m.Path}, {"prefix", &m.Prefix}, {"glob", &m.Glob}} {
		if v := o.get(f.name); v != nil {
			*f.dst, _ = d.str(v, path+"."+f.name)
		}
	}
	if v := o.get("methods"); v != nil {
		m.Methods = d.strings(v, path+".methods")
	}
	if v := o.get("hosts"); v != nil {
		m.Hosts = d.strings(v, path+".hosts")
	}
	if err := m.Validate(); err != nil {
		for _, e := range unjoin(err) {
			// "FIELD: problem" from Validate; point at the field's line.
			field, msg, _ := strings.Cut(e.Error(), ": ")
			at := o.node
			if v := o.fields[field]; v != nil {
				at = v
			}
			d.errorf(at, path+"."+field, "%s", msg)
		}
	}
	return m
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// requirementOf reads require, scopes and claims of a rule or the default.
func (d *decoder) requirementOf(o *object, path string, providers map[string]bool) Requirement {
	var req Requirement
	n := o.get("require")
	if n == nil {
		d.errorf(o.node, path+".require", "required: public, deny, a provider, or {any_of|all_of|allow_missing: [providers]}")
		return req
	}
	fp := path + ".require"
	switch n.Kind {
	case yaml.ScalarNode:
		s, ok := d.str(n, fp)
		if !ok {
			return req
		}
		switch s {
		case "public":
			req.Kind = RequirePublic
		case "deny":
			req.Kind = RequireDeny
		default:
			req.Kind, req.Providers = RequireAnyOf, []string{s}
			if !providers[s] {
				d.errorf(n, fp, "unknown provider %q%s", s, known(providers))
			}
		}
	case yaml.MappingNode:
		ro := d.object(n, fp, "requirement")
		if ro == nil {
			return req
		}
		var kinds []string
		for _, k := range []struct {
			name string
			kind RequirementKind
		}{{"any_of", RequireAnyOf}, {"all_of", RequireAllOf}, {"allow_missing", RequireAllowMissing}} {
			v := ro.get(k.name)
			if v == nil {
				continue
			}
			kinds = append(kinds, k.name)
			req.Kind = k.kind
			kp := fp + "." + k.name
			if v.Kind == yaml.ScalarNode && k.kind == RequireAllowMissing {
				if s, ok := d.str(v, kp); ok {
					req.Providers = []string{s}
				}
			} else {
				req.Providers = d.strings(v, kp)
				if len(req.Providers) == 0 && v.Kind == yaml.SequenceNode {
					d.errorf(v, kp, "name at least one provider")
				}
			}
			for _, name := range req.Providers {
				if !providers[name] {
					d.errorf(v, kp, "unknown provider %q%s", name, known(providers))
				}
			}
		}
		ro.done()
		if len(kinds) != 1 {
			d.errorf(n, fp, "set exactly one of any_of, all_of and allow_missing")
		}
	default:
		d.errorf(n, fp, "want public, deny, a provider name, or {any_of|all_of|allow_missing: [providers]}, not %s", describe(n))
		return req
	}
	needsToken := req.Kind != RequirePublic && req.Kind != RequireDeny
	if v := o.get("scopes"); v != nil {
		req.Scopes = d.strings(v, path+".scopes")
		for i, s := range req.Scopes {
			if strings.ContainsAny(s, " \t") {
				d.errorf(resolveAlias(v.Content[i]), fmt.Sprintf("%s.scopes[%d]", path, i), "%q: a scope is one word", s)
			}
		}
		if !needsToken {
			d.errorf(v, path+".scopes", "%s looks at no token, so it cannot require scopes", req.Kind)
		}
	}
	if v := o.get("claims"); v != nil {
		req.Claims = d.claims(v, path+".claims")
		if !needsToken {
			d.errorf(v, path+".claims", "%s looks at no token, so it cannot require claims", req.Kind)
		}
	}
	return req
}

func known(providers map[string]bool) string {
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "; providers are " + strings.Join(names, ", ")
}

// claims reads required claim values: claim: value, or claim: [values]
// (any one suffices).
func (d *decoder) claims(n *yaml.Node, path string) []ClaimRequirement {
	var out []ClaimRequirement
	d.claimMap(n, path, "a mapping of claim: value or claim: [values]", func(claim, fp string, v *yaml.Node) {
		cr := ClaimRequirement{Claim: claim}
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
			if len(items) == 0 {
				d.errorf(v, fp, "name at least one value")
			}
		}
		for _, item := range items {
			if val, ok := d.claimValue(resolveAlias(item), fp); ok {
				cr.Values = append(cr.Values, val)
			}
		}
		out = append(out, cr)
	})
	return out
}

// claimValue reads a string, an integer, a number or a bool. The type
// matters: 42 matches the number 42 in a token, "42" the string.
func (d *decoder) claimValue(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want a string, a number or a bool, not %s", describe(n))
		return nil, false
	}
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!bool":
		b, _ := strconv.ParseBool(n.Value)
		return b, true
	case "!!int":
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			d.errorf(n, path, "%s: not a 64-bit integer", n.Value)
			return nil, false
		}
		return i, true
	case "!!float":
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.errorf(n, path, "%s: not a finite number", n.Value)
			return nil, false
		}
		return f, true
	}
	d.errorf(n, path, "want a string, a number or a bool, not %s", describe(n))
	return nil, false
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
